"""DAFL, Data-Free Learning of student networks (docs/methods.md, "Data-free distillation"): G makes
images the teacher classifies confidently (one-hot), with strong features (activation) and balanced
classes (balance), the teacher alone judging them; the student learns kd on them.

    L_G = oh·L_oh + act·L_act + bal·L_bal          L_S = kd(s, t, T)
"""
from __future__ import annotations

import dataclasses

from jka.losses import priors
from jka.methods.datafree import generator
from jka.settings import number, setting


@dataclasses.dataclass(frozen=True)
class Settings(generator.Settings):
    T: float = setting(4.0, number(0, low_open=True), "temperature of the student's kd(s, t, T)")
    oh: float = setting(1.0, number(0), "weight of L_oh (CE against the teacher's argmax)")
    act: float = setting(0.001, number(0), "weight of L_act (−mean |pooled features|)")
    bal: float = setting(20.0, number(0), "weight of L_bal (negative entropy of the mean prediction)")


def generator_loss(w: Settings, t, t_pooled, r_bn, s):
    """(L_G, its terms) from the teacher's logits ``t`` and pooled features (the student is not used)."""
    l_oh, l_act, l_bal = priors.one_hot(t), priors.activation(t_pooled), priors.balance(t)
    return w.oh * l_oh + w.act * l_act + w.bal * l_bal, {"oh": l_oh, "act": l_act, "bal": l_bal}


student_loss = generator.kd_student
GAME = generator.Game(generator_loss, student_loss, uses_student=False)

METHOD = generator.method("dafl", Settings, GAME,
                          "data-free: G makes confident, active, balanced images for the teacher; the student learns kd")
