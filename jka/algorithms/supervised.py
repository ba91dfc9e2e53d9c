"""Supervised training from labels (how teachers are made; with ``data.relabel`` also the
relabelled-digits networks of the transferability study)."""
from __future__ import annotations

from jka import losses
from jka.algorithms.base import Algorithm


class Supervised(Algorithm):
    name = "supervised"

    def loss(self, params, batch_stats, teacher_vars, x, batch, rng):
        logits, _, new_bs = self.apply_student(params, batch_stats, x, train=True)
        loss = losses.cross_entropy(logits, batch["label"])
        return loss, (new_bs, {"ce": loss})

    def export(self, state):
        arch, n, variables, meta = super().export(state)
        relabel = self.cfg.data.get("relabel", None)
        if relabel is not None:
            meta.update(relabel=relabel, relabel_seed=int(self.cfg.data.get("relabel_seed", 0)))
        return arch, n, variables, meta
