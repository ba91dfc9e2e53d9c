"""Relational KD (Park et al. 2019) on pooled features.

``L = w_d · smoothL1(ψ_D(s), ψ_D(t)) + w_a · smoothL1(ψ_A(s), ψ_A(t))`` with ``w_d = 25``,
``w_a = 50``. ``ψ_D``: pairwise Euclidean distances divided by their mean over off-diagonal
pairs; ``ψ_A``: cosines of the angles ∠(e_j − e_i, e_k − e_i) for all triplets.
"""
from __future__ import annotations

import jax.numpy as jnp

from jka.losses import f32, l2_normalize
from jka.losses.distill._common import flat


def smooth_l1(a, b):
    """Mean Huber loss with threshold 1 (PyTorch ``F.smooth_l1_loss``)."""
    d = jnp.abs(a - b)
    return jnp.mean(jnp.where(d < 1.0, 0.5 * d * d, d - 0.5))


def pairwise_distances(e, eps: float = 1e-12):
    """Euclidean distance matrix, zero on the diagonal."""
    sq = jnp.sum(e * e, axis=1)
    d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * (e @ e.T), eps)
    d = jnp.sqrt(d2)
    return jnp.where(jnp.eye(e.shape[0], dtype=bool), 0.0, d)


def normalised_distances(e):
    d = pairwise_distances(e)
    pos = d > 0
    mean = jnp.sum(jnp.where(pos, d, 0.0)) / jnp.maximum(jnp.sum(pos), 1)
    return d / mean


def angles(e):
    """``(B, D) → (B·B·B,)``: ⟨n(e_j − e_i), n(e_k − e_i)⟩ for every (i, j, k)."""
    diff = l2_normalize(e[None, :, :] - e[:, None, :], axis=2)  # [i, j] = e_j − e_i
    return jnp.einsum("ijd,ikd->ijk", diff, diff).reshape(-1)


def rkd(f_s, f_t, w_d: float = 25.0, w_a: float = 50.0):
    s, t = flat(f32(f_s)), flat(f32(f_t))
    loss_d = smooth_l1(normalised_distances(s), normalised_distances(t))
    loss_a = smooth_l1(angles(s), angles(t))
    return w_d * loss_d + w_a * loss_a
