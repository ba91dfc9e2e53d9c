"""Data-Free Adversarial Distillation (DFAD, SPEC §5).

G maximises ``L1(s, t)`` = mean |s − t| over the logits of its images; the student minimises the
same L1 on fresh G samples, 5 student steps per generator step by default
(``datafree.kd_steps=5``, ``g_steps=1``). The game is symmetric, so ``datafree.one_stage=True``
trains both players from one backward pass (gradient reversal at G's output, SPEC §5.1).
"""
from __future__ import annotations

import jax.numpy as jnp

from jka.algorithms.dafl import GeneratorDistillation


def l1_logits(s, t):
    """Mean absolute difference of student and teacher logits (PyTorch ``F.l1_loss``)."""
    return jnp.mean(jnp.abs(s.astype(jnp.float32) - t.astype(jnp.float32)))


class DFAD(GeneratorDistillation):
    name = "dfad"
    symmetric = True

    def student_loss(self, s, t):
        return l1_logits(s, t)

    def generator_loss(self, t, t_pooled, r_bn, s):
        l1 = l1_logits(s, t)
        return -l1, {"g_l1": l1}
