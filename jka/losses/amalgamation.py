"""Loss terms of knowledge amalgamation (docs/methods.md): CFL's MMD², adaptive amalgamation's
entropy selection."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jka.losses import l2_normalize

MMD_SIGMAS = (0.001, 0.01, 0.05, 0.1, 0.2, 1.0, 2.0)


def squared_distances(a, b):
    """``D_ij = ‖a_i − b_j‖²`` for row batches ``a`` (N, D) and ``b`` (M, D), from the differences (not
    ``‖a‖² + ‖b‖² − 2ab``) so that equal rows give exactly 0: with σ = 0.001 the kernel divides by
    2·10⁻⁶ and would amplify float32 round-off."""
    return jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), axis=-1)


def rbf_kernel(a, b, sigmas=MMD_SIGMAS):
    """Multi-bandwidth RBF kernel matrix ``Σ_σ exp(−‖a_i − b_j‖² / (2σ²))``."""
    d2 = squared_distances(a, b)
    return sum(jnp.exp(-d2 / (2.0 * float(s) ** 2)) for s in sigmas)


def mmd2(x, y, sigmas=MMD_SIGMAS, normalize: bool = True):
    """Biased MMD² ``mean K_xx + mean K_yy − 2 mean K_xy`` (:func:`rbf_kernel`) between feature batches
    ``x`` and ``y`` (any shape, batch first; rows flattened and L2-normalised), clamped at 0."""
    x, y = (jnp.asarray(a, jnp.float32).reshape(len(a), -1) for a in (x, y))
    if normalize:
        x, y = l2_normalize(x), l2_normalize(y)
    k_xx = rbf_kernel(x, x, sigmas).mean()
    k_yy = rbf_kernel(y, y, sigmas).mean()
    k_xy = rbf_kernel(x, y, sigmas).mean()
    return jnp.maximum(k_xx + k_yy - 2.0 * k_xy, 0.0)


def entropy(logits):
    """``H = −Σ_c p_c log p_c`` of ``σ(logits)`` over the last axis (one value per sample)."""
    log_p = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


def select_least_entropy(logits_per_teacher):
    """One-hot (B, K) choice of the teacher with the least entropy for each sample, from K teachers'
    logits (B, C) on the same sub-task classes; ties go to the lower teacher index."""
    h = jnp.stack([entropy(t) for t in logits_per_teacher], axis=-1)
    return jax.nn.one_hot(jnp.argmin(h, axis=-1), len(logits_per_teacher), dtype=jnp.float32)
