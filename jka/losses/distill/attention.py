"""Attention transfer (Zagoruyko & Komodakis 2017).

``L = Σ_stage mean((a(F_s) − a(F_t))²)``, ``a(F) = L2-normalise(vec(mean_c F^p))`` with p = 2.
Maps of different sizes are average-pooled to the smaller one.
"""
from __future__ import annotations

import jax.numpy as jnp

from jka.losses import f32, l2_normalize
from jka.losses.distill._common import flat, pool_to_smaller


def attention_map(f, p: float = 2.0):
    """``(B, H, W, C) → (B, H·W)``: channel mean of ``F^p``, L2-normalised per sample."""
    return l2_normalize(flat(jnp.mean(f32(f) ** p, axis=-1)), axis=-1)


def attention(fs_list, ft_list, p: float = 2.0):
    total = 0.0
    for fs, ft in zip(fs_list, ft_list):
        fs, ft = pool_to_smaller(f32(fs), f32(ft))
        total = total + jnp.mean(jnp.square(attention_map(fs, p) - attention_map(ft, p)))
    return total
