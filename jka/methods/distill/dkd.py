"""DKD, decoupled knowledge distillation (docs/methods.md, "DKD"; Zhao et al., CVPR 2022).

KD splits into a target-class and a non-target part, weighed freely here. With ``p = σ(z/T)`` and label ``y``:

    b     = (p_y, 1 − p_y)                              (target vs the rest)
    p̂     = softmax over the non-target logits only (z/T with the target left out)
    TCKD  = KL(b_t ‖ b_s),   NCKD = KL(p̂_t ‖ p̂_s)
    L     = ce·CE(s, y) + w(e)·T²·(α·TCKD + β·NCKD),   w(e) = min(e / warmup_epochs, 1)

for the 1-based epoch e. Defaults: the paper's CIFAR-100 setting.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jka import losses
from jka.methods import common
from jka.methods.api import Method, need_teachers
from jka.settings import BOOL, number, setting

MASK = 1000.0  # subtracted from the target's tempered logit: its share of p̂ is below e^-990


@dataclasses.dataclass(frozen=True)
class Settings:
    alpha: float = setting(1.0, number(0), "weight of TCKD (the target-vs-rest part)")
    beta: float = setting(8.0, number(0), "weight of NCKD (among the non-target classes)")
    T: float = setting(4.0, number(0, low_open=True), "temperature of every softmax")
    ce: float = setting(1.0, number(0), "weight of CE on labels")
    warmup_epochs: float = setting(20.0, number(0), "epochs over which the DKD term ramps in as min(e/warmup, 1), "
                                                    "e the 1-based epoch (0: full weight from the first step)")
    logit_std: bool = setting(False, BOOL, "standardise both logits per sample before the softmaxes (Sun et al.)")


def dkd_terms(s, t, labels, T: float):
    """(TCKD, NCKD) of logits ``s``, ``t`` (B × C) and integer ``labels``, batch means before the T² factor."""
    s, t = s.astype(jnp.float32) / T, t.astype(jnp.float32) / T
    target = jax.nn.one_hot(labels, s.shape[-1], dtype=jnp.float32)

    def binary(z):  # log (p_y, 1 − p_y), from the log-probabilities of the target and of the rest
        log_p = jax.nn.log_softmax(z, axis=-1)
        log_y = jnp.sum(log_p * target, axis=-1)
        log_rest = jax.nn.logsumexp(jnp.where(target > 0, -jnp.inf, log_p), axis=-1)
        return jnp.stack([log_y, log_rest], axis=-1)

    def non_target(z):
        return jax.nn.log_softmax(z - MASK * target, axis=-1)

    tckd = losses.kl_rows(binary(t), binary(s)).mean()
    nckd = losses.kl_rows(non_target(t), non_target(s)).mean()
    return tckd, nckd


def objective(s: Settings, logits, t, labels, warmup=1.0):
    """``ce·CE(s, y) + warmup·T²·(α·TCKD + β·NCKD)`` and its parts (CE on the raw logits)."""
    z_s, z_t = losses.standardized(s.logit_std, logits, t)
    tckd, nckd = dkd_terms(z_s, z_t, labels, s.T)
    ce = losses.cross_entropy(logits, labels)
    total = s.ce * ce + warmup * s.T ** 2 * (s.alpha * tckd + s.beta * nckd)
    return total, {"tckd": tckd, "nckd": nckd, "ce": ce, "warmup": jnp.asarray(warmup, jnp.float32)}


def build(ctx):
    s, teacher = ctx.settings, ctx.teachers[0]
    data = common.split(ctx.cfg, teacher.classes)
    net = common.student_net(ctx, len(data.classes))
    warmup = common.epoch_warmup(ctx.cfg, data, s.warmup_epochs)

    def loss(params, batch_stats, teacher_vars, x, batch, rng, step):
        t, _ = teacher(teacher_vars[0], x)
        logits, _, new_bs = net.forward(params, batch_stats, x, train=True)
        total, metrics = objective(s, logits, t, batch["label"], warmup(step))
        return total, ({"student": new_bs}, metrics)

    return common.classifier(ctx, "dkd", data, net, loss, uses_labels=True)


METHOD = Method("dkd", build=build, settings=Settings, check=need_teachers("dkd", 1, 1),
                summary="DKD: KD decoupled into target-class (TCKD) and non-target (NCKD) parts, weighted apart")
