"""Knowledge distillation from one or several frozen teachers (docs/methods.md, "Knowledge distillation").

With K teachers over disjoint class subsets, the student predicts their union in teacher order
and learns ``kd(s, concat_k t_k, T)`` with no labels. With ``beta > 0`` (one teacher over the
student's classes) it is the classic ``α kd(s, t, T) + β CE(s, y)``. ``logit_std``: both sides of kd
are standardised per sample first (:func:`jka.losses.standardize`).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jka import losses
from jka.methods import common
from jka.methods.api import Method, need_teachers
from jka.settings import BOOL, number, setting


@dataclasses.dataclass(frozen=True)
class Settings:
    T: float = setting(4.0, number(0, low_open=True), "temperature of kd(s, t, T)")
    alpha: float = setting(1.0, number(0), "weight of the kd term")
    beta: float = setting(0.0, number(0), "weight of CE on labels (0: no label is read)")
    logit_std: bool = setting(False, BOOL, "standardise the student's and the concatenated teachers' logits per "
                                           "sample before kd (Sun et al., CVPR 2024)")


def teacher_logits(teachers, teacher_vars, x):
    """Concatenated teacher logits (the student's target over the union of their classes)."""
    return jnp.concatenate([t(v, x)[0] for t, v in zip(teachers, teacher_vars)], axis=-1)


def objective(s: Settings, logits, t, labels=None):
    """``α·kd(s, t, T) + β·CE(s, y)`` (standardised logits in kd with ``logit_std``) and its parts; labels
    read only when ``β > 0``."""
    l_kd = losses.kd(*losses.standardized(s.logit_std, logits, t), s.T)
    metrics, total = {"kd": l_kd}, s.alpha * l_kd
    if s.beta > 0:
        metrics["ce"] = ce = losses.cross_entropy(logits, labels)
        total = total + s.beta * ce
    return total, metrics


def build(ctx):
    s, teachers = ctx.settings, ctx.teachers
    data = common.split(ctx.cfg, common.disjoint_union(teachers, "kd"))
    net = common.student_net(ctx, len(data.classes))

    def loss(params, batch_stats, teacher_vars, x, batch, rng, step):
        t = teacher_logits(teachers, teacher_vars, x)
        logits, _, new_bs = net.forward(params, batch_stats, x, train=True)
        total, metrics = objective(s, logits, t, batch.get("label"))
        return total, ({"student": new_bs}, metrics)

    return common.classifier(ctx, "kd", data, net, loss, uses_labels=s.beta > 0)


METHOD = Method("kd", build=build, settings=Settings, check=need_teachers("kd"),
                summary="distillation from one or several teachers (their classes' union, no labels)", h100_mfu=0.163)
