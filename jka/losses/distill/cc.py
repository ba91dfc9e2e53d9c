"""Correlation congruence (Peng et al. 2019), as in RepDistiller: on 128-d embeddings ``e_s``, ``e_t`` of
the pooled features (``jka.methods.distill.terms.Embed``, not normalised, as RepDistiller's ``LinearEmbed``),
``L = mean_i Σ_d δ_i,d · δ_i+1,d`` with ``δ_i = |e_s,i − e_t,i|`` (consecutive samples' discrepancies)."""
from __future__ import annotations

import jax.numpy as jnp

from jka.losses import f32


def cc(e_s, e_t):
    delta = jnp.abs(f32(e_s) - f32(e_t))
    return jnp.mean(jnp.sum(delta[:-1] * delta[1:], axis=1))
