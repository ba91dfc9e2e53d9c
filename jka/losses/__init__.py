"""Loss functions: pure functions of arrays returning scalars (SPEC §1).

Class axis is always the last axis; every other axis (batch, and H, W for dense outputs) is
averaged.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _f32(x):
    return jnp.asarray(x, jnp.float32)


def kd(s, t, T: float = 1.0):
    """``T² · KL(σ(t/T) ‖ σ(s/T))``, summed over classes, mean over every other axis."""
    s, t = _f32(s), _f32(t)
    log_p_t = jax.nn.log_softmax(t / T, axis=-1)
    log_p_s = jax.nn.log_softmax(s / T, axis=-1)
    kl = jnp.sum(jnp.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
    return (T * T) * kl.mean()


def js(s, t, T: float = 1.0):
    """Jensen-Shannon divergence of the tempered distributions ``σ(s/T)``, ``σ(t/T)``."""
    p = jax.nn.softmax(_f32(s) / T, axis=-1)
    q = jax.nn.softmax(_f32(t) / T, axis=-1)
    m = 0.5 * (p + q)
    log_m = jnp.log(jnp.clip(m, 1e-12))

    def kl(a):
        return jnp.sum(a * (jnp.log(jnp.clip(a, 1e-12)) - log_m), axis=-1)

    return (0.5 * (kl(p) + kl(q))).mean()


def cross_entropy(logits, labels, ignore_index: int | None = None):
    """Mean cross-entropy of integer labels; ``ignore_index`` entries are left out of the mean."""
    logits = _f32(logits)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    safe = labels if ignore_index is None else jnp.where(labels == ignore_index, 0, labels)
    nll = -jnp.take_along_axis(log_p, safe[..., None].astype(jnp.int32), axis=-1)[..., 0]
    if ignore_index is None:
        return nll.mean()
    valid = (labels != ignore_index).astype(jnp.float32)
    return jnp.sum(nll * valid) / jnp.maximum(valid.sum(), 1.0)


def soft_cross_entropy(logits, target_probs):
    """Cross-entropy against a probability target, mean over every non-class axis."""
    return -jnp.sum(_f32(target_probs) * jax.nn.log_softmax(_f32(logits), axis=-1), axis=-1).mean()


def mse(a, b):
    """Mean squared error over all elements."""
    return jnp.mean(jnp.square(_f32(a) - _f32(b)))


def accuracy_count(logits, labels):
    """Number of correct argmax predictions (a sum, so it can be added across batches)."""
    return jnp.sum(jnp.argmax(logits, axis=-1) == labels)
