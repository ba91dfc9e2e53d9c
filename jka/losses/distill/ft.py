"""Factor transfer (Kim et al. 2018): the teacher's last-stage map paraphrased into a factor ``P(F_t)``
(an auto-encoder trained by reconstruction), the student's translated into ``Tr(F_s)`` (both in
``jka.methods.distill.terms``); ``L = mean |n(vec Tr(F_s)) − n(vec P(F_t))|`` with ``n`` the L2
normalisation per sample (p = 1). Maps of different sizes are pooled to the smaller one."""
from __future__ import annotations

import jax.numpy as jnp

from jka.losses import f32, l2_normalize
from jka.losses.distill._common import flat, pool_to_smaller


def factor(f):
    return l2_normalize(flat(f32(f)), axis=1)


def ft(factor_s, factor_t):
    fs, ft_ = pool_to_smaller(f32(factor_s), f32(factor_t))
    return jnp.mean(jnp.abs(factor(fs) - factor(ft_)))
