"""DIST, distillation from a stronger teacher (docs/methods.md, "DIST"; Huang et al., NeurIPS 2022).

The student matches the relations of the teacher's probabilities ``P = σ(z/T)`` (B × C) rather than
the probabilities (KL), by Pearson correlation ρ (blind to shifts and scales):

    inter = 1 − mean_i ρ(P_s[i, :], P_t[i, :])     (per sample, across classes)
    intra = 1 − mean_j ρ(P_s[:, j], P_t[:, j])     (per class, across the batch)
    L     = ce·CE(s, y) + T²·(β·inter + γ·intra)

Defaults: the paper's CIFAR setting (ImageNet: β = γ = 1, T = 1).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jka import losses
from jka.methods import common
from jka.methods.api import Method, need_teachers
from jka.settings import BOOL, number, setting

EPS = 1e-8


@dataclasses.dataclass(frozen=True)
class Settings:
    T: float = setting(4.0, number(0, low_open=True), "temperature of both softmaxes")
    beta: float = setting(2.0, number(0), "weight of the inter-class relation (per sample)")
    gamma: float = setting(2.0, number(0), "weight of the intra-class relation (per class)")
    ce: float = setting(1.0, number(0), "weight of CE on labels (0: no label is read)")
    logit_std: bool = setting(False, BOOL, "standardise both logits per sample before the softmaxes (Sun et al.)")


def pearson_rows(a, b):
    """ρ between matching rows of ``a`` and ``b`` (cosine of the mean-centred rows)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / (jnp.linalg.norm(a, axis=1) * jnp.linalg.norm(b, axis=1) + EPS)


def dist_terms(s, t, T: float):
    """(inter, intra) relation losses of logits ``s``, ``t`` (B × C), before the T² factor."""
    p_s = jax.nn.softmax(s.astype(jnp.float32) / T, axis=-1)
    p_t = jax.nn.softmax(t.astype(jnp.float32) / T, axis=-1)
    return 1.0 - pearson_rows(p_s, p_t).mean(), 1.0 - pearson_rows(p_s.T, p_t.T).mean()


def objective(s: Settings, logits, t, labels=None):
    """``ce·CE(s, y) + T²·(β·inter + γ·intra)`` and its parts (labels read only when ``ce > 0``)."""
    inter, intra = dist_terms(*losses.standardized(s.logit_std, logits, t), s.T)
    total = s.T ** 2 * (s.beta * inter + s.gamma * intra)
    metrics = {"inter": inter, "intra": intra}
    if s.ce > 0:
        metrics["ce"] = ce = losses.cross_entropy(logits, labels)
        total = total + s.ce * ce
    return total, metrics


def build(ctx):
    s, teacher = ctx.settings, ctx.teachers[0]
    data = common.split(ctx.cfg, teacher.classes)
    net = common.student_net(ctx, len(data.classes))

    def loss(params, batch_stats, teacher_vars, x, batch, rng, step):
        t, _ = teacher(teacher_vars[0], x)
        logits, _, new_bs = net.forward(params, batch_stats, x, train=True)
        total, metrics = objective(s, logits, t, batch.get("label"))
        return total, ({"student": new_bs}, metrics)

    return common.classifier(ctx, "dist", data, net, loss, uses_labels=s.ce > 0)


METHOD = Method("dist", build=build, settings=Settings, check=need_teachers("dist", 1, 1),
                summary="DIST: the student matches the teacher's inter- and intra-class correlations")
