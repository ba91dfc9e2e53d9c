"""Variational information distillation (Ahn et al. 2019): ``L = mean ½((μ(F_s) − F_t)²/σ² + log σ²)``,
``σ² = softplus(θ) + 1e-5`` per teacher channel; ``μ`` is a small 1×1-conv regressor, one per stage
(``VIDExtra`` in ``jka.methods.distill.terms``)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jka.losses import f32

EPS = 1e-5


def vid(mu, f_t, theta):
    """Gaussian negative log-likelihood (without the constant) of ``F_t`` under ``N(μ, σ²)``."""
    var = jax.nn.softplus(f32(theta)) + EPS
    return jnp.mean(0.5 * (jnp.square(f32(mu) - f32(f_t)) / var + jnp.log(var)))
