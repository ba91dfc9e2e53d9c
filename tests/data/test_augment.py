"""Crops pad black in pixel space, before normalisation, as torchvision's RandomCrop(padding=p)
followed by Normalize does in the papers' PyTorch recipes."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jka.data.augment import normalise, pad_crop, to_unit
from jka.methods.common import preparer
from jka.train.program import Split
from tests.helpers import import_torchvision

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def test_pad_crop_then_normalise_equals_torchvision_random_crop_then_normalize():
    torch = pytest.importorskip("torch")
    tvf = import_torchvision().transforms.functional
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    offsets = rng.integers(0, 9, (6, 2))  # (top, left) in [0, 2·4], what RandomCrop(32, padding=4) draws
    ours = np.asarray(normalise(pad_crop(to_unit(jnp.asarray(images)), jnp.asarray(offsets), 4), MEAN, STD))
    for img, (top, left), got in zip(images, offsets, ours):
        t = tvf.to_tensor(img)  # CHW in [0, 1]
        t = tvf.crop(tvf.pad(t, 4, fill=0), int(top), int(left), 32, 32)  # RandomCrop's pad, then its crop
        want = tvf.normalize(t, MEAN, STD).permute(1, 2, 0).numpy()
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert torch.is_tensor(t)


def test_the_training_inputs_pad_black_not_the_mean_colour():
    """A batch of white images, cropped with pad 2: the padded border is black, normalised."""
    cfg = ml_collections.ConfigDict({"data": {"augment": {"crop_pad": 2, "flip": False}}})
    prepare = preparer(cfg, Split(None, None, MEAN, STD, []), jnp.float32)  # what every classifier's step runs
    x = np.asarray(prepare(jax.random.PRNGKey(3), jnp.full((64, 8, 8, 3), 255, jnp.uint8)))
    black = (0 - np.asarray(MEAN)) / np.asarray(STD)
    white = (1 - np.asarray(MEAN)) / np.asarray(STD)
    corner = x[:, 0, 0, :]
    assert np.any(np.all(np.isclose(corner, black), axis=-1))  # some crops show the border ...
    assert np.all(np.isclose(corner, black).all(-1) | np.isclose(corner, white).all(-1))  # ... black, never grey
