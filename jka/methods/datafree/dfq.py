"""DFQ-style synthesis (docs/methods.md, "Data-free distillation"): G seeks images the student still
gets wrong (``L_adv = −kd``) that match the teacher's BatchNorm statistics (``R_bn``), are
confidently classified and balanced; the student learns kd on them.

    L_G = adv·(−kd(s, t, T)) + bn·R_bn + oh·L_oh + bal·L_bal          L_S = kd(s, t, T)
"""
from __future__ import annotations

import dataclasses

from jka.losses import priors
from jka.methods.datafree import generator
from jka.settings import number, setting


@dataclasses.dataclass(frozen=True)
class Settings(generator.Settings):
    T: float = setting(4.0, number(0, low_open=True), "temperature of kd(s, t, T) (the student's and L_adv's)")
    adv: float = setting(1.0, number(0), "weight of L_adv = −kd(s, t, T)")
    bn: float = setting(1.0, number(0), "weight of R_bn (the teacher's BatchNorm statistics)")
    oh: float = setting(1.0, number(0), "weight of L_oh (CE against the teacher's argmax)")
    bal: float = setting(20.0, number(0), "weight of L_bal (negative entropy of the mean prediction)")


student_loss = generator.kd_student


def generator_loss(w: Settings, t, t_pooled, r_bn, s):
    l_adv = -student_loss(w, s, t)
    l_oh, l_bal = priors.one_hot(t), priors.balance(t)
    loss = w.adv * l_adv + w.bn * r_bn + w.oh * l_oh + w.bal * l_bal
    return loss, {"adv": l_adv, "bn": r_bn, "oh": l_oh, "bal": l_bal}


GAME = generator.Game(generator_loss, student_loss, uses_bn=True)

METHOD = generator.method("dfq", Settings, GAME,
                          "data-free: G matches the teacher's BN statistics, confident and balanced, against the student")
