"""Shared loss terms: pure functions of arrays returning scalars (docs/methods.md, "Shared pieces").

The class axis is always the last axis; every other axis (batch, and H, W for dense outputs) is
averaged. A term that only one method uses lives beside that method; the distillation zoo's terms
are in :mod:`jka.losses.distill`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def f32(x):
    return jnp.asarray(x, jnp.float32)


def kl_rows(log_p, log_q):
    """``KL(p ‖ q) = Σ_c p_c (log p_c − log q_c)`` per row, from log-probabilities."""
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


def standardize(z, eps: float = 1e-7):
    """Logit standardisation (Sun et al., CVPR 2024): ``(z − mean(z)) / (std(z) + eps)`` over the class axis,
    with the unbiased (n − 1) standard deviation, as the reference code (``torch.std``). A constant row
    maps to zeros with a zero (not NaN) gradient."""
    z = f32(z)
    centred = z - z.mean(axis=-1, keepdims=True)
    var = jnp.sum(jnp.square(centred), axis=-1, keepdims=True) / (z.shape[-1] - 1)
    std = jnp.where(var > 0, jnp.sqrt(jnp.where(var > 0, var, 1.0)), 0.0)
    return centred / (std + eps)


def standardized(on: bool, *logits):
    """``logits`` each standardised (:func:`standardize`) when ``on``, else unchanged (a tuple either way)."""
    return tuple(standardize(z) if on else z for z in logits)


def kd(s, t, T: float = 1.0):
    """``T² · KL(σ(t/T) ‖ σ(s/T))``, summed over classes, mean over every other axis."""
    s, t = f32(s), f32(t)
    kl = kl_rows(jax.nn.log_softmax(t / T, axis=-1), jax.nn.log_softmax(s / T, axis=-1))
    return (T * T) * kl.mean()


def js(s, t, T: float = 1.0):
    """Jensen-Shannon divergence of the tempered distributions ``σ(s/T)``, ``σ(t/T)``."""
    p = jax.nn.softmax(f32(s) / T, axis=-1)
    q = jax.nn.softmax(f32(t) / T, axis=-1)
    m = 0.5 * (p + q)
    log_m = jnp.log(jnp.clip(m, 1e-12))

    def kl(a):
        return jnp.sum(a * (jnp.log(jnp.clip(a, 1e-12)) - log_m), axis=-1)

    return (0.5 * (kl(p) + kl(q))).mean()


def cross_entropy(logits, labels, ignore_index: int | None = None):
    """Mean cross-entropy of integer labels; ``ignore_index`` entries are left out of the mean."""
    logits = f32(logits)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    safe = labels if ignore_index is None else jnp.where(labels == ignore_index, 0, labels)
    nll = -jnp.take_along_axis(log_p, safe[..., None].astype(jnp.int32), axis=-1)[..., 0]
    if ignore_index is None:
        return nll.mean()
    valid = (labels != ignore_index).astype(jnp.float32)
    return jnp.sum(nll * valid) / jnp.maximum(valid.sum(), 1.0)


def soft_cross_entropy(logits, target_probs):
    """Cross-entropy against a probability target, mean over every non-class axis."""
    return -jnp.sum(f32(target_probs) * jax.nn.log_softmax(f32(logits), axis=-1), axis=-1).mean()


def mse(a, b):
    """Mean squared error over all elements."""
    return jnp.mean(jnp.square(f32(a) - f32(b)))


def per_sample_mse(a, b):
    """Mean squared error per sample (mean over every non-batch axis)."""
    d = jnp.square(f32(a) - f32(b))
    return d.reshape(d.shape[0], -1).mean(axis=-1)


def l2_normalize(x, axis=-1, eps: float = 1e-12):
    """``x / max(‖x‖₂, eps)`` along ``axis`` (PyTorch ``F.normalize``), with a finite gradient at 0."""
    sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
    return x / jnp.sqrt(jnp.where(sq > eps * eps, sq, eps * eps))
