"""Data-Free Quantization-style synthesis (DFQ, SPEC §5) for distillation.

G minimises ``adv·L_adv + bn·R_bn + oh·L_oh + 20·L_bal`` (weights ``loss.adv``, ``loss.bn``,
``loss.oh``, ``loss.bal``; default 1, 1, 1, 20) where ``L_adv = −kd(s, t, T)`` (G seeks images the
student still gets wrong), ``R_bn`` the teacher's BN-statistics prior, ``L_oh`` the one-hot and
``L_bal`` the balance term of SPEC §1. The student learns ``kd(s, t, T)``.
"""
from __future__ import annotations

from jka import losses
from jka.algorithms.dafl import GeneratorDistillation
from jka.losses import priors


class DFQ(GeneratorDistillation):
    name = "dfq"
    synthesis_uses_bn = True

    loss_weights = dict(adv=1.0, bn=1.0, oh=1.0, bal=20.0)

    def generator_loss(self, t, t_pooled, r_bn, s):
        l_adv = -losses.kd(s, t, self.T)
        l_oh, l_bal = priors.one_hot(t), priors.balance(t)
        loss = self.w["adv"] * l_adv + self.w["bn"] * r_bn + self.w["oh"] * l_oh + self.w["bal"] * l_bal
        return loss, {"adv": l_adv, "bn": r_bn, "oh": l_oh, "bal": l_bal}
