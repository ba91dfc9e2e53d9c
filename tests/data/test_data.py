"""Data: the embedded digits split, class subsets, step-indexed batches, tfds via mock data."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jka.data import ArrayDataset, Batches, load_split, select_classes
from jka.data.augment import random_crop_flip, to_float
from jka.data.records import RecordDataset
from jka.data.sources import digits
from jka.errors import ConfigError, UserError
from tests.helpers import mock_tfds, prepare_tfds_images


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
    with mock_tfds(num_examples=24):
        tr = load_split(cfg, "train", classes=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert isinstance(tr, ArrayDataset)  # "auto": 24 small images are held in memory
    assert len(tr) == 24 and tr.image_shape == (28, 28, 1) and tr.images.dtype == np.uint8
    assert tr.num_classes == 10


class _CountingSource:
    """A tfds source that records which rows were read."""

    def __init__(self, src):
        self.src, self.reads = src, []

    def __len__(self):
        return len(self.src)

    def __getitem__(self, k):
        self.reads.append(int(k))
        return self.src[k]

    def __getitems__(self, keys):
        self.reads.extend(int(k) for k in keys)
        return self.src.__getitems__(keys)


@pytest.mark.parametrize("classes", [None, [3, 1, 8]])
def test_tfds_read_on_demand_equals_in_memory_and_reads_only_the_batch_rows(classes):
    cfg = ml_collections.ConfigDict(dict(name="cifar10", image_size=16, data_dir=None, in_memory=True))
    with mock_tfds(num_examples=120):
        held = load_split(cfg, "train", classes)
        cfg.in_memory = False
        lazy = load_split(cfg, "train", classes)
        assert isinstance(held, ArrayDataset) and isinstance(lazy, RecordDataset)
        assert len(lazy) == len(held) and lazy.image_shape == held.image_shape == (16, 16, 3)
        assert lazy.num_classes == held.num_classes == (10 if classes is None else 3)
        lazy.source = counting = _CountingSource(lazy.source)
        a, b = Batches(held, 8, seed=4), Batches(lazy, 8, seed=4)
        for step in (0, 1, b.steps_per_epoch + 2):  # the last one in the next epoch
            x, y = a.host_batch(step), b.host_batch(step)
            np.testing.assert_array_equal(x["image"], y["image"])
            np.testing.assert_array_equal(x["label"], y["label"])
        expected = np.concatenate([lazy.rows[b.indices(s)] for s in (0, 1, b.steps_per_epoch + 2)])
        assert counting.reads == expected.tolist()  # the rows of those batches, nothing else
        np.testing.assert_array_equal(lazy.labels, held.labels)
    if classes is not None:  # relabelled in the given order
        assert set(held.labels) == {0, 1, 2}


def test_real_array_record_split_read_on_demand_equals_in_memory(tmp_path):
    """A tfds dataset prepared on disk (array_record, PNG images), not a mock: reading on demand,
    with the parallel decode of large reads, gives the in-memory split's batches and labels."""
    name = prepare_tfds_images(str(tmp_path), n_train=300, n_test=100)
    cfg = ml_collections.ConfigDict(dict(name=name, image_size=24, data_dir=str(tmp_path), in_memory=True))
    held = load_split(cfg, "train", classes=[9, 0, 4, 5])
    cfg.in_memory = False
    lazy = load_split(cfg, "train", classes=[9, 0, 4, 5])
    assert isinstance(lazy, RecordDataset) and len(lazy) == len(held) > 0
    np.testing.assert_array_equal(lazy.labels, held.labels)
    a, b = Batches(held, 96, seed=1), Batches(lazy, 96, seed=1)  # 96 rows: split over the read threads
    for step in range(3):
        x, y = a.host_batch(step), b.host_batch(step)
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["label"], y["label"])
    # the labels belong to their images: band k of intensity for class k, resized to 24 px
    x, y = b.host_batch(0)["image"], b.host_batch(0)["label"]
    band = np.array([9, 0, 4, 5])[y]
    assert np.all(np.abs(x.reshape(len(x), -1).mean(1) - (25 * band + 12)) < 3)


def test_in_memory_must_be_true_false_or_none():
    cfg = ml_collections.ConfigDict(dict(name="mnist", image_size=None, data_dir=None, in_memory="yes"))
    with mock_tfds(num_examples=8), pytest.raises(ConfigError, match="data.in_memory must be"):
        load_split(cfg, "train")


def test_missing_tfds_dataset_says_how_to_prepare(tmp_path):
    cfg = ml_collections.ConfigDict(dict(name="cifar10", image_size=None, classes=None, data_dir=str(tmp_path)))
    with pytest.raises(UserError, match="tfds build cifar10"):
        load_split(cfg, "train")


def test_prefetch_reader_processes_give_the_same_batches_as_direct_reads(tmp_path):
    """data.read_workers=2: two spawned reader processes build process 1-of-2's host batches, equal
    to reading them here; an in-memory dataset falls back to the thread."""
    from jka.data.core import Prefetch

    name = prepare_tfds_images(str(tmp_path), n_train=200, n_test=20, size=20)
    cfg = ml_collections.ConfigDict(dict(name=name, image_size=12, data_dir=str(tmp_path), in_memory=False))
    batches = Batches(load_split(cfg, "train", classes=[2, 7, 5]), 16, seed=3)
    batches.process = (1, 2)  # as process 1 of a 2-process run: rows 8..15 of each global batch
    feed = Prefetch(batches, stop=9, workers=2)
    try:
        assert "Process" in type(feed.pool).__name__
        for step in range(9):
            got, want = feed.host_batch(step), batches.host_batch(step)
            assert got["image"].shape == (8, 12, 12, 3)
            np.testing.assert_array_equal(got["image"], want["image"])
            np.testing.assert_array_equal(got["label"], want["label"])
    finally:
        feed.close()
    held = Prefetch(Batches(digits("train"), 16, seed=0), stop=2, workers=2)
    assert "Thread" in type(held.pool).__name__
    held.close()
    with pytest.raises(ConfigError, match="read_workers"):
        Prefetch(batches, stop=2, workers=-1)
