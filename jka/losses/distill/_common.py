"""Small helpers shared by the distillation terms (NHWC features)."""
from __future__ import annotations

import jax.numpy as jnp

from jka.errors import ConfigError


def pool_to(x, h: int, w: int):
    """Average-pool an NHWC map down to ``h × w`` (integer factors, as adaptive pooling does then)."""
    n, H, W, c = x.shape
    if (H, W) == (h, w):
        return x
    if H % h or W % w:
        raise ConfigError(f"cannot pool a {H}x{W} feature map to {h}x{w}; pick stages whose sizes divide")
    return x.reshape(n, h, H // h, w, W // w, c).mean(axis=(2, 4))


def pool_to_smaller(fs, ft):
    """Pool the larger of two NHWC maps to the other's size (RepDistiller's adaptive pooling)."""
    hs, ht = fs.shape[1], ft.shape[1]
    if hs > ht:
        fs = pool_to(fs, ft.shape[1], ft.shape[2])
    elif hs < ht:
        ft = pool_to(ft, fs.shape[1], fs.shape[2])
    return fs, ft


def flat(x):
    """``(B, ...) → (B, D)``."""
    return jnp.reshape(x, (x.shape[0], -1))
