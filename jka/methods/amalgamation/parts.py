"""What layer-wise, CFL and adaptive share: hooked features (teacher maps resized to the student's) and the
program of a student trained with its blocks (part ``'blocks'``, one optimizer) from the teachers alone.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax

from jka.errors import ConfigError
from jka.methods import common
from jka.settings import TEXT, Rule, sequence
from jka.train.program import Program

LAYERS = Rule(lambda v: sequence(TEXT).ok(v) and len(v) > 0, "a non-empty list of feature names")


def resize_to(f, like):
    """Resize map ``f`` (B, H, W, C) bilinearly to the spatial size of ``like``; vectors pass through."""
    if f.ndim != 4 or f.shape[1:3] == like.shape[1:3]:
        return f
    return jax.image.resize(f, (f.shape[0], like.shape[1], like.shape[2], f.shape[3]), "linear")


def feature(feats: dict, name: str, who: str, key: str):
    """``feats[name]``, or a ConfigError naming the setting ``key`` that asked for it."""
    if name not in feats:
        raise ConfigError(f"{who} has no feature {name!r}; its features are {sorted(feats)}; fix {key}")
    return feats[name]


def hooked(s_feats, t_feats, layers, key: str, who: str = "teacher", ids=None):
    """(student maps at ``layers``, per target its maps of those names resized to the student's)."""
    s_maps = [feature(s_feats, n, "the student", key) for n in layers]
    ids = range(len(t_feats)) if ids is None else ids
    t_maps = [[resize_to(feature(f, n, f"{who} {k}", key), s) for n, s in zip(layers, s_maps)]
              for k, f in zip(ids, t_feats)]
    return s_maps, t_maps


def shapes(ctx, net: common.Net, data, gather: Callable):
    """``gather(student features, teacher features)`` as shapes, nothing run (names and kinds checked)."""
    return jax.eval_shape(gather, *common.feature_shapes(net, ctx.teachers, data.image_shape, ctx.dtype))


def teacher_outputs(teachers, teacher_vars, x) -> list:
    """``[(logits, features)]`` of each teacher on ``x``."""
    return [t(v, x) for t, v in zip(teachers, teacher_vars)]


def union_student(ctx, method: str):
    """(data over the union of the teachers' disjoint classes in teacher order, the student net)."""
    data = common.split(ctx.cfg, common.disjoint_union(ctx.teachers, method))
    return data, common.student_net(ctx, len(data.classes))


def apply_blocks(module, params, batch_stats, inputs, train: bool = True):
    """(the blocks' outputs on ``inputs``, their batch statistics, updated when training)."""
    variables = {"params": params["blocks"], "batch_stats": batch_stats["blocks"]}
    if train and batch_stats["blocks"]:
        out, upd = module.apply(variables, *inputs, train=True, mutable=["batch_stats"])
        return out, upd["batch_stats"]
    return module.apply(variables, *inputs, train=train), batch_stats["blocks"]


def program(ctx, name: str, data, net: common.Net, module, inputs: Callable, loss: Callable, *,
            groups: dict | None = None, predict: Callable | None = None, more_eval: Callable | None = None,
            export: Callable | None = None) -> Program:
    """:func:`common.classifier` of ``net`` and ``module`` (part ``'blocks'``, initialised on ``inputs(student
    features, teacher features)``), ``loss(params, batch_stats, teacher outputs, x, step)``, ``more_eval``."""
    teachers = ctx.teachers

    def blocks(rng, x, student_vars):
        _, s_feats = net.module.apply(student_vars, x, train=False)
        t_feats = [f for _, f in teacher_outputs(teachers, [t.variables for t in teachers], x)]
        return {"blocks": module.init(rng, *inputs(s_feats, t_feats), train=False)}

    def step_loss(params, batch_stats, teacher_vars, x, batch, rng, step):
        return loss(params, batch_stats, teacher_outputs(teachers, teacher_vars, x), x, step)

    built = common.classifier(ctx, name, data, net, step_loss, uses_labels=False, extra=blocks, predict=predict,
                              groups=groups, export=export)
    if more_eval is None:
        return built
    return dataclasses.replace(built, evaluate=lambda state, ectx: {**built.evaluate(state, ectx),
                                                                    **more_eval(state, ectx)})
