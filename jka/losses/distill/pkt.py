"""Probabilistic knowledge transfer (Passalis & Tefas 2018) on pooled features.

Cosine similarities ``K = n(f) n(f)ᵀ`` mapped to [0, 1] by ``(K + 1)/2`` and row-normalised into
conditional probabilities ``P``; ``L = mean_ij P_t,ij · log((P_t,ij + ε)/(P_s,ij + ε))``, ε = 1e-7.
"""
from __future__ import annotations

import jax.numpy as jnp

from jka.losses import f32
from jka.losses.distill._common import flat

EPS = 1e-7


def cosine_probabilities(f, eps: float = EPS):
    f = flat(f32(f))
    f = f / (jnp.sqrt(jnp.sum(f * f, axis=1, keepdims=True)) + eps)
    k = (f @ f.T + 1.0) / 2.0
    return k / jnp.sum(k, axis=1, keepdims=True)


def pkt(f_s, f_t, eps: float = EPS):
    p_s, p_t = cosine_probabilities(f_s, eps), cosine_probabilities(f_t, eps)
    return jnp.mean(p_t * jnp.log((p_t + eps) / (p_s + eps)))
