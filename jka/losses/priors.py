"""Priors on synthesized inputs (docs/methods.md, "Shared pieces"), used by the data-free methods."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jka.losses import cross_entropy


def moments(x, weights=None):
    """Mean and biased variance of ``x`` over every axis but the last (channels), weighted by
    ``weights`` (B,) when given (e.g. over the images a teacher claims)."""
    xf = x.astype(jnp.float32)
    axes = tuple(range(x.ndim - 1))
    if weights is None:
        mean = xf.mean(axes)
        return mean, jnp.square(xf - mean).mean(axes)
    w = jnp.broadcast_to(weights.reshape((-1,) + (1,) * (x.ndim - 1)), xf.shape[:-1] + (1,))
    n = jnp.maximum(jnp.sum(w), 1e-6)
    mean = jnp.sum(w * xf, axis=axes) / n
    return mean, jnp.sum(w * jnp.square(xf - mean), axis=axes) / n


def bn_statistics(bn_stats, batch_stats, weights=None):
    """``R_bn = Σ_ℓ ‖μ_batch,ℓ − μ_run,ℓ‖₂ + ‖var_batch,ℓ − var_run,ℓ‖₂`` (norms not squared), from
    ``bn_stats``, the inputs of every BatchNorm sown by :class:`jka.models.layers.BatchNorm` (a teacher
    run with ``mutable=['bn_stats']``), and the teacher's running ``batch_stats``; the batch moments
    are :func:`moments` of each input (``weights``: per sample)."""
    flat_in = jax.tree_util.tree_flatten_with_path(bn_stats, is_leaf=lambda x: isinstance(x, tuple))[0]
    total = jnp.zeros((), jnp.float32)
    for path, sown in flat_in:
        # path: (..., module names..., 'input'); sown: the BatchNorm's inputs, one per call.
        node = batch_stats
        for key in path[:-1]:
            node = node[key.key]
        mean, var = moments(sown[-1], weights)
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
    """``L_tv``: the mean absolute difference between neighbouring pixels in each of 4 directions
    (horizontal, vertical and the two diagonals), summed over the directions (as DeepInversion's
    reference code, ``get_image_prior_losses``). NHWC."""
    x = x.astype(jnp.float32)
    diffs = (
        x[:, :, 1:] - x[:, :, :-1],          # horizontal
        x[:, 1:, :] - x[:, :-1, :],          # vertical
        x[:, 1:, 1:] - x[:, :-1, :-1],       # diagonal
        x[:, 1:, :-1] - x[:, :-1, 1:],       # anti-diagonal
    )
    return sum(jnp.abs(d).mean() for d in diffs)
