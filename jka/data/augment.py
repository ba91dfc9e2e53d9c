"""Device-side input processing, run inside the compiled step."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def to_float(images, mean, std, dtype=jnp.float32):
    """uint8 [0, 255] or float [0, 1] images → normalised float ``(x − mean) / std``."""
    x = images.astype(jnp.float32)
    if images.dtype == jnp.uint8:
        x = x / 255.0
    x = (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
    return x.astype(dtype)


def random_crop_flip(rng, x, pad: int = 0, flip: bool = False):
    """Per-sample random crop after zero padding by ``pad`` pixels, and random horizontal flip."""
    n, h, w, _ = x.shape
    k_crop, k_flip = jax.random.split(rng)
    if pad > 0:
        xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        offs = jax.random.randint(k_crop, (n, 2), 0, 2 * pad + 1)

        def crop(img, off):
            return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, img.shape[-1]))

        x = jax.vmap(crop)(xp, offs)
    if flip:
        do = jax.random.bernoulli(k_flip, 0.5, (n, 1, 1, 1))
        x = jnp.where(do, x[:, :, ::-1, :], x)
    return x
