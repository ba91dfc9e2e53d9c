"""Knowledge distillation from one or several frozen teachers (docs/methods.md, "Knowledge distillation").

With K teachers over disjoint class subsets the student predicts their union, in teacher order, from
``kd(s, concat_k t_k, T)`` alone; with ``beta > 0`` (one teacher) it is ``α kd(s, t, T) + β CE(s, y)``.
``logit_std`` standardises both sides of kd per sample first (:func:`jka.losses.standardize`).

``deit`` (DeiT: one teacher, a ViT student with a distillation token): the class head learns ``β CE(z_cls,
y)``, the distillation head ``α CE(z_dist, argmax t)`` ('hard') or ``α kd(z_dist, t, T)`` ('soft'); the
student predicts with the mean of the two heads.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jka import losses
from jka.errors import ConfigError
from jka.methods import common
from jka.methods.api import Method, need_teachers
from jka.settings import BOOL, choice, number, setting

DEIT = ("off", "hard", "soft")


@dataclasses.dataclass(frozen=True)
class Settings:
    T: float = setting(4.0, number(0, low_open=True), "temperature of kd(s, t, T)")
    alpha: float = setting(1.0, number(0), "weight of the kd term")
    beta: float = setting(0.0, number(0), "weight of CE on labels (0: no label is read)")
    logit_std: bool = setting(False, BOOL, "standardise the student's and the concatenated teachers' logits per "
                                           "sample before kd (Sun et al., CVPR 2024)")
    deit: str = setting("off", choice("kd.deit", DEIT), "DeiT's distillation token (a ViT student with dist_token): "
                        "'hard' α CE(z_dist, argmax t), 'soft' α kd(z_dist, t, T), with β CE(z_cls, y); 'off': plain kd")


def teacher_logits(teachers, teacher_vars, x):
    """Concatenated teacher logits (the student's target over the union of their classes)."""
    return jnp.concatenate([t(v, x)[0] for t, v in zip(teachers, teacher_vars)], axis=-1)


def objective(s: Settings, logits, t, labels=None):
    """``α·kd(s, t, T) + β·CE(s, y)`` and its parts (labels read only when ``β > 0``)."""
    l_kd = losses.kd(*losses.standardized(s.logit_std, logits, t), s.T)
    metrics, total = {"kd": l_kd}, s.alpha * l_kd
    if s.beta > 0:
        metrics["ce"] = ce = losses.cross_entropy(logits, labels)
        total = total + s.beta * ce
    return total, metrics


def deit_objective(s: Settings, feats, t, labels):
    """``β CE(z_cls, y) + α D(z_dist, t)``, D: CE to the teacher's argmax ('hard') or kd at T ('soft')."""
    z_dist = feats["logits_dist"]
    distil = (losses.cross_entropy(z_dist, jnp.argmax(t, axis=-1)) if s.deit == "hard"
              else losses.kd(*losses.standardized(s.logit_std, z_dist, t), s.T))
    ce = losses.cross_entropy(feats["logits_cls"], labels)
    return s.beta * ce + s.alpha * distil, {"ce": ce, f"deit_{s.deit}": distil}


def check(cfg, s: Settings):
    if s.deit == "off":
        return need_teachers("kd")(cfg, s)
    need_teachers("kd.deit", 1, 1)(cfg, s)
    if cfg.model.name != "vit" or not dict(cfg.model.get("kwargs", {}) or {}).get("dist_token", False):
        raise ConfigError(f"kd.deit={s.deit!r} trains a ViT with a distillation token: set model.name='vit' and "
                          "model.kwargs.dist_token=True (or kd.deit='off')")
    if s.beta <= 0:
        raise ConfigError(f"kd.deit={s.deit!r} learns the labels through the class head: set kd.beta > 0 "
                          "(DeiT: kd.alpha=0.5, kd.beta=0.5)")


def build(ctx):
    s, teachers = ctx.settings, ctx.teachers
    data = common.split(ctx.cfg, common.disjoint_union(teachers, "kd"))
    net = common.student_net(ctx, len(data.classes))

    def loss(params, batch_stats, teacher_vars, x, batch, rng, step):
        t = teacher_logits(teachers, teacher_vars, x)
        logits, feats, new_bs = net.forward(params, batch_stats, x, train=True)
        if s.deit != "off":
            total, metrics = deit_objective(s, feats, t, batch["label"])
        else:
            total, metrics = objective(s, logits, t, batch.get("label"))
        return total, ({"student": new_bs}, metrics)

    return common.classifier(ctx, "kd", data, net, loss, uses_labels=s.beta > 0)


METHOD = Method("kd", build=build, settings=Settings, check=check,
                summary="distillation from one or several teachers (their classes' union, no labels)", h100_mfu=0.163)
