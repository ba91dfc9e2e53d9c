"""Device-side input processing, run inside the compiled step.

Augmentation works in pixel space, before normalisation, as the reference PyTorch recipes do
(torchvision ``RandomCrop(size, padding=p)`` then ``Normalize``): the crop's padding is black,
not the mean colour.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)  # RandomResizedCrop's defaults in torchvision


def to_unit(images):
    """uint8 [0, 255] or float [0, 1] images → float32 in [0, 1]."""
    x = images.astype(jnp.float32)
    return x / 255.0 if images.dtype == jnp.uint8 else x


def normalise(x, mean, std, dtype=jnp.float32):
    """``(x − mean) / std`` per channel, in ``dtype``."""
    return ((x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)).astype(dtype)


def to_float(images, mean, std, dtype=jnp.float32):
    """uint8 [0, 255] or float [0, 1] images → normalised float ``(x − mean) / std``."""
    return normalise(to_unit(images), mean, std, dtype)


def pad_crop(x, offsets, pad: int):
    """Each image zero-padded by ``pad`` pixels, then cropped back to its size at ``offsets``
    ((top, left) per image, each in ``[0, 2·pad]``)."""
    _, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    return jax.vmap(lambda img, off: jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c)))(xp, offsets)


def random_crop_flip(rng, x, pad: int = 0, flip: bool = False):
    """Per-sample random crop after zero padding by ``pad`` pixels, and random horizontal flip."""
    n = x.shape[0]
    k_crop, k_flip = jax.random.split(rng)
    if pad > 0:
        x = pad_crop(x, jax.random.randint(k_crop, (n, 2), 0, 2 * pad + 1), pad)
    if flip:
        do = jax.random.bernoulli(k_flip, 0.5, (n, 1, 1, 1))
        x = jnp.where(do, x[:, :, ::-1, :], x)
    return x


def resize_weights(start, length, in_size: int, out_size: int):
    """(``out_size``, ``in_size``) weights that resample input pixels ``[start, start + length)`` to
    ``out_size`` pixels: bilinear (a triangle filter over pixel centres) that widens to ``length /
    out_size`` pixels when shrinking, as PIL's and torchvision's antialiased bilinear resize do;
    pixels outside the range get no weight, and each row sums to 1 (the crop's edges are clamped,
    as when the range is cut out before it is resized). ``start``/``length`` may be traced."""
    scale = length / out_size
    support = jnp.maximum(scale, 1.0)
    centre = start + (jnp.arange(out_size) + 0.5) * scale  # output pixel centres, in input pixels
    pixel = jnp.arange(in_size) + 0.5
    w = jnp.maximum(0.0, 1.0 - jnp.abs(pixel[None, :] - centre[:, None]) / support)
    w = jnp.where((pixel >= start) & (pixel < start + length), w, 0.0)
    return w / w.sum(axis=1, keepdims=True)


def crop_resize(x, boxes, size: int):
    """Each image's box ``(top, left, height, width)`` resized to ``size`` × ``size`` (see
    :func:`resize_weights`): two small matrix products per image."""
    _, h, w, _ = x.shape

    def one(img, box):
        rows = resize_weights(box[0], box[2], h, size)
        cols = resize_weights(box[1], box[3], w, size)
        return jnp.einsum("oh,hwc,pw->opc", rows, img, cols)

    return jax.vmap(one)(x, boxes.astype(jnp.float32))


def resized_crop_boxes(rng, n: int, height: int, width: int, scale=SCALE, ratio=RATIO,
                       tries: int = 10):
    """``n`` boxes ``(top, left, height, width)`` drawn as torchvision's ``RandomResizedCrop`` draws
    one: up to ``tries`` draws of an area (a fraction of the image's, uniform in ``scale``) and an
    aspect ratio (log-uniform in ``ratio``), the first whose rounded sides fit the image taken, at a
    uniform position; when none fits, the whole image cut to the nearest ratio in ``ratio``,
    centred. All tries are drawn at once (the step is one compiled function)."""
    k_area, k_ratio, k_pos = jax.random.split(rng, 3)
    area = height * width * jax.random.uniform(k_area, (n, tries), minval=scale[0], maxval=scale[1])
    aspect = jnp.exp(jax.random.uniform(k_ratio, (n, tries), minval=math.log(ratio[0]), maxval=math.log(ratio[1])))
    bw, bh = jnp.round(jnp.sqrt(area * aspect)), jnp.round(jnp.sqrt(area / aspect))
    fits = (bw > 0) & (bw <= width) & (bh > 0) & (bh <= height)
    first = jnp.argmax(fits, axis=1)[:, None]
    found = fits.any(axis=1)
    fh, fw = fallback_box(height, width, ratio)
    bh = jnp.where(found, jnp.take_along_axis(bh, first, 1)[:, 0], fh)
    bw = jnp.where(found, jnp.take_along_axis(bw, first, 1)[:, 0], fw)
    u = jax.random.uniform(k_pos, (n, 2))
    top = jnp.where(found, jnp.minimum(jnp.floor(u[:, 0] * (height - bh + 1)), height - bh), (height - bh) // 2)
    left = jnp.where(found, jnp.minimum(jnp.floor(u[:, 1] * (width - bw + 1)), width - bw), (width - bw) // 2)
    return jnp.stack([top, left, bh, bw], axis=1).astype(jnp.int32)


def fallback_box(height: int, width: int, ratio) -> tuple[int, int]:
    """(height, width) of RandomResizedCrop's box when no try fits: the whole image, cut to the
    nearest aspect ratio (width / height) in ``ratio``."""
    if width / height < min(ratio):
        return int(round(width / min(ratio))), width
    if width / height > max(ratio):
        return height, int(round(height * max(ratio)))
    return height, width


def resize_centre_crop(x, resize: int = 0, crop: int = 0):
    """torchvision's ``Resize(resize)`` (the shorter side to ``resize``, the ratio kept; 0: no resize)
    then ``CenterCrop(crop)`` (0: no crop), as one resampling of the images."""
    n, h, w, _ = x.shape
    if resize:
        nh, nw = (resize, int(resize * w / h)) if h <= w else (int(resize * h / w), resize)
    else:
        nh, nw = h, w
    ch, cw = (crop, crop) if crop else (nh, nw)
    if ch > nh or cw > nw:
        raise ValueError(f"a centre crop of {crop} px from {nh}×{nw} px images; lower data.augment.eval_crop")
    top, left = int(round((nh - ch) / 2)), int(round((nw - cw) / 2))
    rows = resize_weights(0, h, h, nh)[top:top + ch]
    cols = resize_weights(0, w, w, nw)[left:left + cw]
    return jnp.einsum("oh,nhwc,pw->nopc", rows, x, cols)


def viewer(aug) -> Callable:
    """``view(rng, x, train)``: the device-side views of ``data.augment`` (``aug``, a mapping) of
    [0, 1] images: in training a RandomResizedCrop (``resized_crop``), then the padded crop and the
    flip; in evaluation (``train=False``) the resize and centre crop (``eval_resize``, ``eval_crop``)."""
    pad, flip = int(aug.get("crop_pad", 0)), bool(aug.get("flip", False))
    size, resize, crop = (int(aug.get(k, 0)) for k in ("resized_crop", "eval_resize", "eval_crop"))
    scale, ratio = tuple(aug.get("crop_scale", SCALE)), tuple(aug.get("crop_ratio", RATIO))

    def view(rng, x, train: bool = True):
        if train and size:
            boxes = resized_crop_boxes(jax.random.fold_in(rng, 1), *x.shape[:3], scale, ratio)
            x = crop_resize(x, boxes, size)  # torchvision's RandomResizedCrop(size, scale, ratio)
        if train and (pad or flip):
            x = random_crop_flip(rng, x, pad, flip)
        if not train and (resize or crop):
            x = resize_centre_crop(x, resize, crop)
        return x

    return view
