"""Knowledge distillation from one or several frozen teachers (docs/methods.md, "Knowledge distillation").

With K teachers over disjoint class subsets, the student predicts their union in teacher order
and learns ``kd(s, concat_k t_k, T)`` with no labels. With ``beta > 0`` (one teacher over the
student's classes) it is the classic ``α kd(s, t, T) + β CE(s, y)``.
"""
from __future__ import annotations

import jax.numpy as jnp

from jka import losses
from jka.algorithms.base import Algorithm, union_classes
from jka.errors import ConfigError


def teacher_logits(teachers, teacher_vars, x):
    """Concatenated teacher logits (the student's target over the union of their classes)."""
    return jnp.concatenate([t(v, x)[0] for t, v in zip(teachers, teacher_vars)], axis=-1)


class KD(Algorithm):
    name = "kd"

    def __init__(self, cfg, teachers):
        if not teachers:
            raise ConfigError("algorithm 'kd' needs at least one entry in teachers")
        union = union_classes(teachers)
        if len(set(union)) != len(union):
            raise ConfigError(f"teachers' class subsets overlap ({union}); kd needs disjoint subsets")
        self.alpha = float(cfg.loss.get("alpha", 1.0))
        self.beta = float(cfg.loss.get("beta", 0.0))
        self.T = float(cfg.loss.get("T", 1.0))
        self.uses_labels = self.beta > 0
        super().__init__(cfg, teachers)

    def default_student_classes(self, cfg, num_classes):
        return union_classes(self.teachers)

    def loss(self, params, batch_stats, teacher_vars, x, batch, rng):
        t = teacher_logits(self.teachers, teacher_vars, x)
        s, _, new_bs = self.apply_student(params, batch_stats, x, train=True)
        l_kd = losses.kd(s, t, self.T)
        metrics = {"kd": l_kd}
        loss = self.alpha * l_kd
        if self.beta > 0:
            ce = losses.cross_entropy(s, batch["label"])
            loss = loss + self.beta * ce
            metrics["ce"] = ce
        return loss, (new_bs, metrics)
