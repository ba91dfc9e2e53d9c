"""Supervised training from labels: how teachers are made (with ``data.relabel``, also the
relabelled-digits networks of the transferability study). ``L = CE(s, y)``."""
from __future__ import annotations

from jka import losses
from jka.methods import common
from jka.methods.api import Method


def build(ctx):
    data = common.split(ctx.cfg)
    net = common.student_net(ctx, len(data.classes))

    def loss(params, batch_stats, teacher_vars, x, batch, rng, step):
        logits, _, new_bs = net.forward(params, batch_stats, x, train=True)
        ce = losses.cross_entropy(logits, batch["label"])
        return ce, ({"student": new_bs}, {"ce": ce})

    relabel = ctx.cfg.data.get("relabel", None)
    info = {} if relabel is None else {"relabel": relabel, "relabel_seed": int(ctx.cfg.data.get("relabel_seed", 0))}
    return common.classifier(ctx, "supervised", data, net, loss, uses_labels=True,
                             export=common.export_part(net, data, **info))


METHOD = Method("supervised", build=build, summary="a classifier from labels (how teachers are made)", h100_mfu=0.163)
