"""Neuron selectivity transfer (Huang & Wang 2017): MMD with the polynomial kernel ``k(a,b) = (a·b)²``.

Each channel's H·W map is L2-normalised; per stage
``L = mean k(t,t) − 2 mean k(s,t) + mean k(s,s)`` over channel pairs (and samples), summed over
stages. Widths may differ; maps of different sizes are pooled to the smaller one.
"""
from __future__ import annotations

import jax.numpy as jnp

from jka.losses import f32, l2_normalize
from jka.losses.distill._common import pool_to_smaller


def channel_maps(f):
    """``(B, H, W, C) → (B, C, H·W)`` with every channel map L2-normalised."""
    b, h, w, c = f.shape
    return l2_normalize(jnp.transpose(f32(f).reshape(b, h * w, c), (0, 2, 1)), axis=2)


def poly_mmd_term(a, b):
    """``mean_{n,i,j} (a_n,i · b_n,j)²``."""
    return jnp.mean(jnp.square(jnp.einsum("nip,njp->nij", a, b)))


def nst(fs_list, ft_list):
    total = 0.0
    for fs, ft in zip(fs_list, ft_list):
        fs, ft = pool_to_smaller(f32(fs), f32(ft))
        s, t = channel_maps(fs), channel_maps(ft)
        total = total + poly_mmd_term(t, t) - 2.0 * poly_mmd_term(s, t) + poly_mmd_term(s, s)
    return total
