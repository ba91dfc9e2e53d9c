"""Device-side input processing, run inside the compiled step.

Augmentation works in pixel space, before normalisation, as the reference PyTorch recipes do
(torchvision ``RandomCrop(size, padding=p)`` then ``Normalize``): the crop's padding is black,
not the mean colour.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


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
