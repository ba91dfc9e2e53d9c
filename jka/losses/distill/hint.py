"""FitNet hint (Romero et al. 2015): ``MSE(R(F_s), F_t)`` at the middle stage.

``R`` (conv regressor + BN + ReLU, chosen from the two shapes) lives in
``jka.algorithms.distill_modules.ConvRegressor``; this is the term on its output.
"""
from __future__ import annotations

import jax.numpy as jnp

from jka.losses.distill._common import f32


def hint(regressed_s, f_t):
    """Mean over all elements of ``(R(F_s) − F_t)²``."""
    return jnp.mean(jnp.square(f32(regressed_s) - f32(f_t)))
