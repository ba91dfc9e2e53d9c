"""Similarity-preserving KD (Tung & Mori 2019): ``‖G_t − G_s‖²_F / B²``, ``G = row-normalise(f fᵀ)``.

``f`` is the flattened last-stage feature map of each sample, so the widths may differ.
"""
from __future__ import annotations

import jax.numpy as jnp

from jka.losses import f32, l2_normalize
from jka.losses.distill._common import flat


def similarity(f):
    """``(B, ...) → (B, B)``: the batch Gram matrix with L2-normalised rows."""
    f = flat(f32(f))
    return l2_normalize(f @ f.T, axis=1)


def sp(f_s, f_t):
    b = f_s.shape[0]
    return jnp.sum(jnp.square(similarity(f_t) - similarity(f_s))) / (b * b)
