"""Zero-Shot Knowledge Transfer (ZSKT, SPEC §5): an adversarial generator/student game.

G maximises the student–teacher disagreement ``kd(s, t, T=1)`` on its images; the student
minimises it on fresh G samples. The game is symmetric (``L_G = −L_S``), so
``datafree.one_stage=True`` trains both players from one backward pass (gradient reversal at
G's output, SPEC §5.1). Shared machinery: :class:`jka.algorithms.dafl.GeneratorDistillation`.
"""
from __future__ import annotations

from jka import losses
from jka.algorithms.dafl import GeneratorDistillation
from jka.errors import ConfigError


class ZSKT(GeneratorDistillation):
    name = "zskt"
    symmetric = True

    def __init__(self, cfg, teachers):
        super().__init__(cfg, teachers)
        if self.T != 1.0:
            raise ConfigError(f"zskt's game is kd at temperature 1 (SPEC §5); got loss.T={self.T}: set loss.T=1")

    def student_loss(self, s, t):
        return losses.kd(s, t, self.T)

    def generator_loss(self, t, t_pooled, r_bn, s):
        l_kd = self.student_loss(s, t)
        return -l_kd, {"g_kd": l_kd}
