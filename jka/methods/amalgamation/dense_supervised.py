"""One SegNet-style dense network from labels (how task branching's teachers are made), by
``dense_supervised.kind``: ``segmentation`` (``L = CE(s, seg)`` over labelled pixels; eval ``miou``,
``pixel_acc``, also as ``accuracy``) or ``depth`` (one channel, ``L = mean |s − d|`` over valid pixels, or
the squared error with ``depth_loss='l2'``; eval ``rmse``, ``abs_rel``, ``delta1..3``; the head's bias
starts at the mean valid training depth). ``model.json`` records ``task_kind``.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from jka import losses
from jka.errors import ConfigError
from jka.losses import dense as dense_losses
from jka.methods import common
from jka.methods.amalgamation import dense
from jka.methods.api import Method
from jka.settings import choice, optional, setting

DEPTH_LOSSES = ("l1", "l2")


@dataclasses.dataclass(frozen=True)
class Settings:
    kind: Optional[str] = setting(None, optional(choice("dense task kind", tuple(dense.ALIASES)), "None (required)"),
                                  "segmentation (or seg) or depth")
    depth_loss: str = setting("l1", choice("depth loss (dense_supervised.depth_loss)", DEPTH_LOSSES),
                              "l1 or l2 over the valid depth pixels")


def check(cfg, s: Settings):
    if s.kind is None:
        raise ConfigError("dense_supervised needs dense_supervised.kind (segmentation or depth); "
                          "see jka/configs/amalgamation/scenes.py (part=teacher_seg)")


def supervised_loss(kind: str, depth_loss: str, out, maps):
    """Cross-entropy over labelled pixels, or the depth error over valid pixels."""
    if kind == "segmentation":
        return losses.cross_entropy(out, maps["seg"], ignore_index=dense_losses.IGNORE)
    valid = dense_losses.valid_depth(maps["depth"])
    error = dense_losses.masked_l1 if depth_loss == "l1" else dense_losses.masked_l2
    return error(out, maps["depth"], valid)


def build(ctx):
    s = ctx.settings
    kind = dense.task_kind(s.kind)
    data = dense.split(ctx.cfg, lambda n: list(range(n)) if kind == "segmentation" else [0])
    n_seg = int(data.train.num_classes)
    net = common.student_net(ctx, len(data.classes))
    prepare = dense.preparer(data, ctx.dtype)

    def init(rng, batch):
        variables = net.init(rng, prepare(batch["image"][:1]))
        if kind == "depth" and "head" in variables["params"]:  # start at the mean valid training depth
            depth = data.train.depth
            mean = float(depth[depth > 0].mean()) if (depth > 0).any() else 0.0
            variables = {**variables, "params": dense.with_bias(variables["params"], ("head",), mean)}
        return variables

    def loss(params, batch_stats, teacher_vars, x, maps, rng):
        out, _, new_bs = net.forward(params, batch_stats, x, train=True)
        value = supervised_loss(kind, s.depth_loss, out, maps)
        return value, ({"student": new_bs}, {kind: value})

    def sums(state, batch):
        out, _, _ = net.apply(state.variables("student"), prepare(batch["image"]), train=False)
        return dense.task_sums(kind, out, batch, n_seg)

    def evaluate(state, ectx):
        scores = dense.task_scores(kind, dense.metric_sums(sums, state, data.test, int(ctx.cfg.data.batch_size),
                                                           ectx.mesh))
        if kind == "segmentation":
            scores["accuracy"] = scores["pixel_acc"]
        return scores

    return dense.program(ctx, "dense_supervised", data, net, init, loss, evaluate,
                         common.export_part(net, data, task_kind=kind), uses_labels=True)


METHOD = Method("dense_supervised", build=build, settings=Settings,
                check=check,
                summary="a dense network (segmentation or depth) from labels (task branching's teachers)")
