"""Data: the embedded digits split, class subsets, step-indexed batches, tfds via mock data."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jka.data import Batches, load_split, select_classes
from jka.data.augment import random_crop_flip, to_float
from jka.data.sources import digits
from jka.errors import ConfigError, UserError


def test_digits_fixed_split():
    tr, te = digits("train"), digits("test")
    assert len(tr) + len(te) == 1797 and len(te) == 540
    assert tr.image_shape == (8, 8, 1) and 0.0 <= tr.images.min() and tr.images.max() <= 1.0
    np.testing.assert_array_equal(digits("test").labels, te.labels)  # same split every time
    assert set(np.bincount(te.labels)) <= {52, 53, 54, 55}  # stratified: 52–55 per class
    assert digits("train", 16).image_shape == (16, 16, 1)


def test_select_classes_relabels_in_given_order():
    te = digits("test")
    sub = select_classes(te, [7, 2])
    assert sub.num_classes == 2 and set(sub.labels) == {0, 1}
    np.testing.assert_array_equal(sub.labels == 0, te.labels[np.isin(te.labels, [7, 2])] == 7)
    with pytest.raises(ConfigError, match="outside 0..9"):
        select_classes(te, [3, 12])


def test_batches_are_a_pure_function_of_step_and_cover_epochs():
    ds = digits("train")
    b = Batches(ds, 100, seed=3)
    first = b.indices(0).copy()
    epoch = np.concatenate([b.indices(s) for s in range(b.steps_per_epoch)])
    assert len(set(epoch)) == len(epoch) == 1200  # a permutation without repeats
    np.testing.assert_array_equal(Batches(ds, 100, seed=3).indices(0), first)
    assert not np.array_equal(b.indices(b.steps_per_epoch), first)  # next epoch reshuffled
    assert "label" not in Batches(ds, 100, 3, with_labels=False).host_batch(5)


def test_augmentation_shapes_and_flip():
    x = jnp.arange(2 * 4 * 4, dtype=jnp.float32).reshape(2, 4, 4, 1)
    y = random_crop_flip(jax.random.PRNGKey(0), x, pad=0, flip=True)
    for i in range(2):
        assert jnp.array_equal(y[i], x[i]) or jnp.array_equal(y[i], x[i, :, ::-1])
    z = random_crop_flip(jax.random.PRNGKey(1), x, pad=2)
    assert z.shape == x.shape
    u8 = jnp.full((1, 2, 2, 1), 255, jnp.uint8)
    assert float(to_float(u8, (0.5,), (0.5,))[0, 0, 0, 0]) == pytest.approx(1.0)


def test_tfds_dataset_through_mock_data():
    cfg = ml_collections.ConfigDict(dict(name="mnist", image_size=None, classes=None, data_dir=None))
    with tfds.testing.mock_data(num_examples=24):
        tr = load_split(cfg, "train", classes=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert len(tr) == 24 and tr.image_shape == (28, 28, 1) and tr.images.dtype == np.uint8
    assert tr.num_classes == 10


def test_missing_tfds_dataset_says_how_to_prepare(tmp_path):
    cfg = ml_collections.ConfigDict(dict(name="cifar10", image_size=None, classes=None, data_dir=str(tmp_path)))
    with pytest.raises(UserError, match="tfds build cifar10"):
        load_split(cfg, "train")
