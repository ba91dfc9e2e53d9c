"""CRD, contrastive representation distillation (docs/methods.md, "CRD"; Tian et al., ICLR 2020).

The student's and the teacher's pooled features are embedded by two trained linear maps and
L2-normalised, ``v = n(W·pooled)`` (``dim`` = 128). Two memory banks hold an embedding for each of
the N training samples: ``M_s`` (the student's) and ``M_t`` (the teacher's). For a sample with
dataset index ``i``, the positive is row ``i`` and the K negatives are random rows ``j_1..j_K``:

    h(v, m) = exp(v·m / τ) / Z                 (Z = mean of exp(v·m / τ) over the first batch · N, kept)
    nce(p)  = −[log(p_0 / (p_0 + K/N)) + Σ_k log((K/N) / (p_k + K/N))],  batch mean
    L_crd   = nce(h(v_s, M_t[i, j])) + nce(h(v_t, M_s[i, j]))
    L       = ce·CE(s, y) + kd·kd(s, t, T) + crd·L_crd

After the step ``M[i] ← n(0.5·M[i] + 0.5·v_i)``. The banks (uniform in ``±1/√(dim/3)`` at first, as
RepDistiller's) and the two Z are ``state.buffers``. Negatives are drawn with replacement (NCE's i.i.d.
noise), among the other classes' samples as RepDistiller's dataset does, or among all N
(``negatives='any'``, no label read). Defaults: RepDistiller's CIFAR-100 run ``-a 0 -b 0.8``.
"""
from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jka import losses
from jka.errors import ConfigError
from jka.methods import common
from jka.methods.api import Method, need_teachers
from jka.methods.distill.terms import Embed
from jka.settings import choice, integer, number, setting
from jka.train.program import Program
from jka.train.update import minimize

EPS = 1e-7  # RepDistiller's, in both log ratios
NEGATIVES = ("other_classes", "any")


@dataclasses.dataclass(frozen=True)
class Settings:
    crd: float = setting(0.8, number(0), "weight of the contrastive term (both sides)")
    ce: float = setting(1.0, number(0), "weight of CE on labels")
    kd: float = setting(0.0, number(0), "weight of kd(s, t, T) (1: CRD+KD)")
    T: float = setting(4.0, number(0, low_open=True), "temperature of kd")
    dim: int = setting(128, integer(1), "width of the embeddings and the memory banks")
    K: int = setting(16384, integer(1), "negatives per sample, drawn with replacement")
    tau: float = setting(0.07, number(0, low_open=True), "temperature of the scores exp(v·m/τ)")
    momentum: float = setting(0.5, number(0, 1, high_open=True), "memory-bank momentum")
    negatives: str = setting("other_classes", choice("crd.negatives", NEGATIVES),
                             "draw negatives among the other classes' samples, or among all samples")


class Embeds(nn.Module):
    """The two trained embeddings ``n(W·pooled)`` (student, teacher)."""

    dim: int

    @nn.compact
    def __call__(self, f_s, f_t):
        return Embed(self.dim, True, name="embed_s")(f_s), Embed(self.dim, True, name="embed_t")(f_t)


def initial_buffers(rng, n: int, dim: int) -> dict:
    """The two banks (N × dim, uniform in ±1/√(dim/3)) and the two Z, unset (−1)."""
    k_s, k_t = jax.random.split(rng)
    bound = 1.0 / math.sqrt(dim / 3)
    bank = lambda k: jax.random.uniform(k, (n, dim), jnp.float32, -bound, bound)  # noqa: E731
    return {"bank_s": bank(k_s), "bank_t": bank(k_t), "z_s": -jnp.ones((), jnp.float32),
            "z_t": -jnp.ones((), jnp.float32)}


def contrast_indices(rng, index, labels, k: int, n: int, pools=None):
    """Per sample: its index, then ``k`` negatives drawn with replacement (among ``pools``' other classes)."""
    if pools is None:
        neg = jax.random.randint(rng, (index.shape[0], k), 0, n)
    else:
        order, start, count = pools
        first, size = start[labels][:, None], count[labels][:, None]
        u = jax.random.randint(rng, (index.shape[0], k), 0, n - size)  # a position outside the own class's run
        neg = order[u + jnp.where(u >= first, size, 0)]
    return jnp.concatenate([index[:, None], neg], axis=1)


def class_pools(labels) -> tuple:
    """``(order, start, count)`` of :func:`contrast_indices` for the training labels."""
    labels = np.asarray(labels)
    count = np.bincount(labels)
    if count.max() == len(labels):
        raise ConfigError("crd.negatives='other_classes' needs training samples of at least two classes; "
                          "set crd.negatives='any'")
    order = np.argsort(labels, kind="stable")
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return tuple(jnp.asarray(a, jnp.int32) for a in (order, start, count))


def scores(v, bank, idx, tau: float):
    """``exp(v_b · bank[idx_bj] / τ)``, B × (K+1); the bank rows receive no gradient."""
    rows = jax.lax.stop_gradient(bank[idx])
    return jnp.exp(jnp.einsum("bkd,bd->bk", rows, v.astype(jnp.float32)) / tau)


def nce(p, n: int):
    """RepDistiller's ContrastLoss on ``p`` (B × (K+1), column 0 the positive), noise ``P_n = 1/N``."""
    noise = (p.shape[1] - 1) / n
    log_pos = jnp.log(p[:, 0] / (p[:, 0] + noise + EPS))
    log_neg = jnp.log(noise / (p[:, 1:] + noise + EPS))
    return -(log_pos.sum() + log_neg.sum()) / p.shape[0]


def normaliser(z, e, n: int):
    """``Z``: the kept one, or (while unset, < 0) ``mean(e)·N`` from this batch, with no gradient."""
    return jnp.where(z < 0, jax.lax.stop_gradient(e.mean()) * n, z)


def crd_loss(v_s, v_t, buffers: dict, idx, tau: float, n: int):
    """(``L_crd``, the normalisers ``(Z_s, Z_t)`` used)."""
    e_s, e_t = scores(v_s, buffers["bank_t"], idx, tau), scores(v_t, buffers["bank_s"], idx, tau)
    z_s, z_t = normaliser(buffers["z_s"], e_s, n), normaliser(buffers["z_t"], e_t, n)
    return nce(e_s / z_s, n) + nce(e_t / z_t, n), (z_s, z_t)


def update_bank(bank, index, v, momentum: float):
    """Rows ``index`` of ``bank`` moved to ``n(momentum·M[i] + (1 − momentum)·v_i)``."""
    bank = jnp.asarray(bank)
    rows = bank[index] * momentum + jax.lax.stop_gradient(v).astype(jnp.float32) * (1 - momentum)
    return bank.at[index].set(rows / jnp.linalg.norm(rows, axis=1, keepdims=True))


def next_buffers(buffers: dict, index, v_s, v_t, zs, momentum: float) -> dict:
    """The buffers after a step: both banks updated with the batch's embeddings, the Z used kept."""
    return {"bank_s": update_bank(buffers["bank_s"], index, v_s, momentum),
            "bank_t": update_bank(buffers["bank_t"], index, v_t, momentum), "z_s": zs[0], "z_t": zs[1]}


def objective(s: Settings, logits, t, labels, v_s, v_t, buffers: dict, idx, n: int):
    """``ce·CE + kd·kd(T) + crd·L_crd``, its parts, and the normalisers used."""
    l_crd, zs = crd_loss(v_s, v_t, buffers, idx, s.tau, n)
    total, metrics = s.crd * l_crd, {"crd": l_crd}
    if s.ce > 0:
        metrics["ce"] = ce = losses.cross_entropy(logits, labels)
        total = total + s.ce * ce
    if s.kd > 0:
        metrics["kd"] = l_kd = losses.kd(logits, t, s.T)
        total = total + s.kd * l_kd
    return total, metrics, zs


def build(ctx) -> Program:
    s, cfg, teacher = ctx.settings, ctx.cfg, ctx.teachers[0]
    data = common.split(cfg, teacher.classes)
    net = common.student_net(ctx, len(data.classes))
    n = len(data.train)
    pools = class_pools(data.train.labels) if s.negatives == "other_classes" else None
    uses_labels = s.ce > 0 or pools is not None
    embeds = Embeds(int(s.dim))
    prepare = common.preparer(cfg, data, ctx.dtype)

    def extra(rng, x, student_vars):
        f_s = net.module.apply(student_vars, x, train=False)[1]["pooled"]
        return {"aux": embeds.init(rng, f_s, teacher(teacher.variables, x)[1]["pooled"])}

    student_init = common.student_state(net, lambda batch: prepare(None, batch["image"][:1], augment=False),
                                        cfg.optim, ctx.steps, extra)

    def init(rng, batch):
        k_state, k_bank = jax.random.split(rng)
        return student_init(k_state, batch).replace(buffers=initial_buffers(k_bank, n, int(s.dim)))

    def step(state, teacher_vars, batch):
        state, rng = state.next_rng()
        k_aug, k_neg = jax.random.split(rng)
        x = prepare(k_aug, batch["image"])
        labels = batch.get("label")
        idx = contrast_indices(k_neg, batch["index"], labels, int(s.K), n, pools)

        def loss(params):
            t, t_feats = teacher(teacher_vars[0], x)
            logits, s_feats, new_bs = net.forward(params, state.batch_stats, x, train=True)
            v_s, v_t = embeds.apply({"params": params["aux"]}, s_feats["pooled"], t_feats["pooled"])
            total, metrics, zs = objective(s, logits, t, labels, v_s, v_t, state.buffers, idx, n)
            return total, ({"student": new_bs}, (metrics, (v_s, v_t, zs)))

        state, value, (metrics, (v_s, v_t, zs)) = minimize(state, "student", loss)
        buffers = next_buffers(state.buffers, batch["index"], v_s, v_t, zs, float(s.momentum))
        return state.replace(buffers=buffers).advance(), {"loss": value, **metrics}

    predict = common.predictor(net, prepare)
    return Program(
        name="crd", data=data, teachers=ctx.teachers, batches=common.batches(cfg, data, uses_labels, with_index=True),
        steps=ctx.steps, init=init, step=step,
        evaluate=common.accuracy(predict, data, int(cfg.data.batch_size), common.teacher_groups(data, ctx.teachers)),
        export=common.export_part(net, data), learning_rate=common.learning_rate(cfg.optim, ctx.steps),
        uses_labels=uses_labels, details={"model": net.arch, "model_kwargs": net.kwargs})


METHOD = Method("crd", build=build, settings=Settings, check=need_teachers("crd", 1, 1),
                summary="CRD: the student's and teacher's embeddings contrasted against memory banks of every "
                        "training sample (NCE)")
