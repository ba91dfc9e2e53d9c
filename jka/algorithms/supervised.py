"""Supervised training from labels (how teachers are made)."""
from __future__ import annotations

from jka import losses
from jka.algorithms.base import Algorithm


class Supervised(Algorithm):
    name = "supervised"

    def loss(self, params, batch_stats, teacher_vars, x, batch, rng):
        logits, _, new_bs = self.apply_student(params, batch_stats, x, train=True)
        loss = losses.cross_entropy(logits, batch["label"])
        return loss, (new_bs, {"ce": loss})
