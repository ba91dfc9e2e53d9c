"""ZSKT, Zero-Shot Knowledge Transfer (docs/methods.md, "Data-free distillation"): an adversarial
game, G maximising what the student minimises (symmetric: ``one_stage`` allowed), at temperature
``zskt.T`` (1, the paper's).

    L_S = kd(s, t, T)          L_G = −L_S
"""
from __future__ import annotations

import dataclasses

from jka.methods.datafree import generator
from jka.settings import number, setting


@dataclasses.dataclass(frozen=True)
class Settings(generator.Settings):
    T: float = setting(1.0, number(0, low_open=True), "temperature of the game's kd (the paper plays at 1)")


student_loss = generator.kd_student


def generator_loss(w: Settings, t, t_pooled, r_bn, s):
    l_kd = student_loss(w, s, t)
    return -l_kd, {"g_kd": l_kd}


GAME = generator.Game(generator_loss, student_loss, symmetric=True)


METHOD = generator.method("zskt", Settings, GAME,
                          "data-free adversarial game: G maximises kd(s, t, T), the student minimises it")
