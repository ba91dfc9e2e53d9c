"""DFAD, Data-Free Adversarial Distillation (docs/methods.md, "Data-free distillation"): G maximises
the student's L1 distance to the teacher's logits, the student minimises it (5 student steps per
generator step by default; symmetric: ``one_stage`` allowed).

    L_S = mean |s − t|          L_G = −L_S
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jka.methods.datafree import generator


@dataclasses.dataclass(frozen=True)
class Settings(generator.Settings):
    """DFAD's game has no weight or temperature: the generator keys alone."""


def student_loss(w: Settings, s, t):
    """Mean absolute difference of student and teacher logits (PyTorch ``F.l1_loss``)."""
    return jnp.mean(jnp.abs(s.astype(jnp.float32) - t.astype(jnp.float32)))


def generator_loss(w: Settings, t, t_pooled, r_bn, s):
    l1 = student_loss(w, s, t)
    return -l1, {"g_l1": l1}


GAME = generator.Game(generator_loss, student_loss, symmetric=True)

METHOD = generator.method("dfad", Settings, GAME,
                          "data-free adversarial game: G maximises L1(s, t) on logits, the student minimises it")
