"""RandomResizedCrop and the evaluation's Resize + CenterCrop on the device, against torchvision's
semantics: the boxes against a NumPy re-implementation of its sampling, the resampling against a
NumPy antialiased bilinear crop-resize, torchvision and PIL."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jka import run
from jka.data.augment import crop_resize, resize_centre_crop, resized_crop_boxes, viewer
from jka.errors import ConfigError
from tests.helpers import import_torchvision

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


def numpy_boxes(rng, n, height, width, scale, ratio):
    """torchvision's RandomResizedCrop.get_params, one box at a time, in NumPy."""
    boxes = []
    for _ in range(n):
        for _ in range(10):
            area = height * width * rng.uniform(*scale)
            aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
            w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < w <= width and 0 < h <= height:
                boxes.append((rng.integers(0, height - h + 1), rng.integers(0, width - w + 1), h, w))
                break
        else:
            if width / height < min(ratio):
                w, h = width, round(width / min(ratio))
            elif width / height > max(ratio):
                h, w = height, round(height * max(ratio))
            else:
                h, w = height, width
            boxes.append(((height - h) // 2, (width - w) // 2, h, w))
    return np.array(boxes, np.float64)


@pytest.mark.parametrize("height,width,scale,fallbacks",
                         [(40, 64, SCALE, (0, 0.05)), (16, 48, (0.25, 1.0), (0.2, 0.9))])  # the 2nd: many fallbacks
def test_boxes_follow_torchvision_sampling(height, width, scale, fallbacks):
    n = 4000
    draw = jax.jit(resized_crop_boxes, static_argnums=(1, 2, 3, 4, 5))
    ours = np.asarray(draw(jax.random.PRNGKey(0), n, height, width, scale, RATIO), np.float64)
    ref = numpy_boxes(np.random.default_rng(0), n, height, width, scale, RATIO)
    top, left, h, w = ours.T
    assert (h >= 1).all() and (w >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    fh, fw = numpy_boxes(np.random.default_rng(0), 1, height, width, (2.0, 2.0), RATIO)[0, 2:]  # no try fits
    fallback = (ours == ((height - fh) // 2, (width - fw) // 2, fh, fw)).all(1)
    ref_fallback = (ref == ((height - fh) // 2, (width - fw) // 2, fh, fw)).all(1)
    assert fallbacks[0] <= ref_fallback.mean() <= fallbacks[1]
    sd = math.sqrt(ref_fallback.mean() * (1 - ref_fallback.mean()) / n)
    assert abs(fallback.mean() - ref_fallback.mean()) < 5 * sd + 1e-3
    aspect, area = w / h, h * w / (height * width)
    tried = ~fallback  # a box of a try that fitted
    assert (aspect[tried] >= RATIO[0] - 0.2).all() and (aspect[tried] <= RATIO[1] + 0.2).all()  # up to rounding
    assert (area[tried] >= scale[0] * 0.8).all() and (area <= 1).all()
    wide, ref_wide = (w > h).mean(), (ref[:, 3] > ref[:, 2]).mean()  # a log-uniform ratio: as many wide as tall
    assert abs(wide - ref_wide) < 4 * math.sqrt(ref_wide * (1 - ref_wide) / n)
    for name, a, b in [("height", h, ref[:, 2]), ("width", w, ref[:, 3]), ("top", top, ref[:, 0]),
                       ("left", left, ref[:, 1]), ("area", area, ref[:, 2] * ref[:, 3] / (height * width))]:
        spread = max(a.std(), b.std()) / math.sqrt(n)
        assert abs(a.mean() - b.mean()) < 5 * spread + 1e-9, name  # same distribution
        np.testing.assert_allclose(np.quantile(a, [0.1, 0.5, 0.9]), np.quantile(b, [0.1, 0.5, 0.9]),
                                   atol=0.06 * max(height, width), err_msg=name)


def numpy_resize(img, out_h, out_w):
    """Antialiased bilinear resize (PIL's and torchvision's: a triangle filter widened by the
    shrink factor, normalised over the image), one output pixel at a time."""
    def weights(n_in, n_out):
        scale = n_in / n_out
        support = max(scale, 1.0)
        m = np.zeros((n_out, n_in))
        for o in range(n_out):
            centre = (o + 0.5) * scale
            for i in range(n_in):
                m[o, i] = max(0.0, 1.0 - abs(i + 0.5 - centre) / support)
            m[o] /= m[o].sum()
        return m

    return np.einsum("oh,hwc,pw->opc", weights(img.shape[0], out_h), img, weights(img.shape[1], out_w))


def test_crop_resize_equals_numpy_and_torchvision_on_given_boxes():
    torch = pytest.importorskip("torch")
    tvf = import_torchvision().transforms.functional
    x = np.random.default_rng(1).random((3, 30, 40, 3)).astype(np.float32)
    boxes = np.array([[2, 5, 20, 9], [0, 0, 30, 40], [7, 11, 13, 29]])  # up-, down- and mixed scaling to 16
    ours = np.asarray(jax.jit(crop_resize, static_argnums=2)(jnp.asarray(x), jnp.asarray(boxes), 16))
    for img, (t, left, h, w), got in zip(x, boxes, ours):
        np.testing.assert_allclose(got, numpy_resize(img[t:t + h, left:left + w], 16, 16), atol=1e-5)
        want = tvf.resized_crop(torch.from_numpy(img).permute(2, 0, 1), int(t), int(left), int(h), int(w), [16, 16],
                                antialias=True)
        np.testing.assert_allclose(got, want.permute(1, 2, 0).numpy(), atol=1e-5)


def test_eval_resize_and_centre_crop_equal_torchvision_and_pil():
    torch = pytest.importorskip("torch")
    T = import_torchvision().transforms
    img = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    ours = np.asarray(resize_centre_crop(jnp.asarray(img[None] / 255.0, jnp.float32), 16, 12))[0]
    assert ours.shape == (12, 12, 3)
    pil = np.asarray(T.Compose([T.Resize(16), T.CenterCrop(12)])(Image.fromarray(img)), np.float32) / 255
    np.testing.assert_allclose(ours, pil, atol=1.5 / 255)  # PIL rounds to uint8
    tensor = T.Compose([T.Resize(16, antialias=True), T.CenterCrop(12)])(torch.from_numpy(img / 255.0).permute(2, 0, 1))
    np.testing.assert_allclose(ours, tensor.permute(1, 2, 0).numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(resize_centre_crop(jnp.asarray(img[None] / 255.0), 0, 12))[0],
                               img[4:16, 9:21] / 255.0, atol=1e-6)  # a crop alone moves no pixel


def test_views_of_data_augment_and_their_checks():
    view = jax.jit(viewer({"resized_crop": 12, "flip": True, "eval_resize": 14, "eval_crop": 12}), static_argnums=2)
    x = jnp.asarray(np.random.default_rng(3).random((4, 16, 16, 3)), jnp.float32)
    a, b = view(jax.random.PRNGKey(0), x), view(jax.random.PRNGKey(1), x)
    assert a.shape == b.shape == view(jax.random.PRNGKey(0), x, False).shape == (4, 12, 12, 3)
    assert not np.allclose(a, b)  # the boxes come from the step's key
    base = "distill/digits"
    with pytest.raises(ConfigError, match="two crops"):
        run.validate(run.load(base, ["data.augment.resized_crop=8", "data.augment.crop_pad=1"]))
    with pytest.raises(ConfigError, match="eval_crop=9 is larger"):
        run.validate(run.load(base, ["data.augment.eval_resize=8", "data.augment.eval_crop=9"]))
    with pytest.raises(ConfigError, match="crop_scale"):
        run.validate(run.load(base, ["data.augment.crop_scale=(0.5, 0.1)"]))
