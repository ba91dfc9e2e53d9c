"""Priors on synthesized inputs, from SPEC §1 (used by the data-free methods)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jka.losses import cross_entropy


def bn_statistics(bn_stats, batch_stats):
    """``R_bn = Σ_ℓ ‖μ_batch,ℓ − μ_run,ℓ‖₂ + ‖var_batch,ℓ − var_run,ℓ‖₂``.

    ``bn_stats`` is the ``bn_stats`` collection sown by :class:`jka.models.layers.BatchNorm` when a
    teacher runs with ``mutable=['bn_stats']`` (input mean and biased variance of every BN), and
    ``batch_stats`` the teacher's running statistics. Norms are not squared.
    """
    flat_in = jax.tree_util.tree_flatten_with_path(bn_stats, is_leaf=lambda x: isinstance(x, tuple))[0]
    total = jnp.zeros((), jnp.float32)
    for path, sown in flat_in:
        # path: (..., module names..., 'input'); sown: a tuple of (mean, var) pairs, one per call.
        node = batch_stats
        for key in path[:-1]:
            node = node[key.key]
        mean, var = sown[-1]
        total = total + jnp.linalg.norm(mean - node["mean"]) + jnp.linalg.norm(var - node["var"])
    return total


def one_hot(t_logits, labels=None):
    """``L_oh = CE(t(x), y)`` with ``y = argmax t(x)`` unless labels are given."""
    y = jnp.argmax(t_logits, -1) if labels is None else labels
    return cross_entropy(t_logits, jax.lax.stop_gradient(y))


def activation(features):
    """``L_act = −mean|f_t(x)|`` of the teacher's penultimate features."""
    return -jnp.mean(jnp.abs(features.astype(jnp.float32)))


def balance(t_logits):
    """``L_bal = Σ_c p̄_c log p̄_c`` with ``p̄`` the batch mean of ``σ(t)`` (negative entropy)."""
    p = jax.nn.softmax(t_logits.astype(jnp.float32), -1).reshape(-1, t_logits.shape[-1]).mean(0)
    return jnp.sum(p * jnp.log(jnp.clip(p, 1e-12)))


def total_variation(x):
    """``L_tv``: mean absolute difference between neighbouring pixels over 4 directions
    (horizontal, vertical and the two diagonals), averaged over the directions. NHWC."""
    x = x.astype(jnp.float32)
    diffs = (
        x[:, :, 1:] - x[:, :, :-1],          # horizontal
        x[:, 1:, :] - x[:, :-1, :],          # vertical
        x[:, 1:, 1:] - x[:, :-1, :-1],       # diagonal
        x[:, 1:, :-1] - x[:, :-1, 1:],       # anti-diagonal
    )
    return sum(jnp.abs(d).mean() for d in diffs) / 4.0
