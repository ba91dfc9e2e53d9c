"""Common Feature Learning, CFL (docs/methods.md, "Common feature learning"; IJCAI 2019):
amalgamation from heterogeneous teachers.

Per feature group (``cfl.layers``: student feature names; ``cfl.teacher_layers``: one list of
names per teacher, default the same names), with ``ch = C_s · cfl.ch_ratio`` (default C_s/4):

    aligners A_s, A_k   1×1 conv + BN + ReLU for maps, Linear + ReLU for vectors, → ch
    shared extractor E  two residual blocks (conv3×3-BN-ReLU-conv3×3-BN, + identity, ReLU) for
                        maps, two Linear layers (Linear-ReLU-Linear) for vectors
    decoders D_k        1×1 conv / Linear ch → C_tk
    h_s = E(A_s f_s),  h_k = E(A_k f_tk)
    L_amal = Σ_groups Σ_k MMD²(h_s, h_k)     (jka.losses.amalgamation.mmd2: rows L2-normalised,
                                               σ ∈ {0.001, 0.01, 0.05, 0.1, 0.2, 1, 2}, biased, ≥ 0)
    L_rec  = Σ_groups Σ_k MSE(D_k(h_k), f_tk)
    L      = w0 kd(s, concat_k t_k, T) + w1 L_amal + w2 L_rec
             (cfl.weights; unset: the paper's (1, 10, 10), or (1, 20, 20) with four or more teachers)

Student, aligners, extractor and decoders train together. Teacher maps of another spatial size
(another architecture) are resized bilinearly to the student's before their aligner, so ``h_s`` and
``h_k`` have one shape for the MMD.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

from jka import losses
from jka.errors import ConfigError
from jka.losses.amalgamation import mmd2
from jka.methods import common
from jka.methods.amalgamation import parts
from jka.methods.api import Method, all_checks, need_teachers
from jka.models.layers import BatchNorm
from jka.settings import TEXT, number, optional, sequence, setting


@dataclasses.dataclass(frozen=True)
class Settings:
    layers: list = setting(["block3"], parts.LAYERS, "student feature names, one per feature group")
    teacher_layers: Optional[list] = setting(None, optional(sequence(sequence(TEXT)), "None (the same names)"),
                                             "one list of feature names per teacher, as long as layers")
    weights: Optional[tuple] = setting(None, optional(sequence(number(0), 3), "None (the paper's)"),
                                       "(w_kd, w_amal, w_rec); None: (1, 10, 10), (1, 20, 20) with >= 4 teachers")
    T: float = setting(1.0, number(0, low_open=True), "temperature of kd(s, concat_k t_k, T)")
    ch_ratio: float = setting(0.25, number(0, low_open=True), "common feature width = C_s · ch_ratio")


def weights(s: Settings, n_teachers: int) -> tuple:
    """(w_kd, w_amal, w_rec): the settings', else the paper's for ``n_teachers``."""
    paper = (1.0, 20.0, 20.0) if n_teachers >= 4 else (1.0, 10.0, 10.0)
    return tuple(float(v) for v in (paper if s.weights is None else s.weights))


def check(cfg, s: Settings):
    n = len(cfg.get("teachers", ()) or ())
    if s.teacher_layers is not None and (len(s.teacher_layers) != n or any(len(ls) != len(s.layers)
                                                                         for ls in s.teacher_layers)):
        raise ConfigError("cfl.teacher_layers needs one list per teacher, each as long as cfl.layers")


class Aligner(nn.Module):
    ch: int

    @nn.compact
    def __call__(self, f, train: bool):
        if f.ndim == 4:
            f = nn.Conv(self.ch, (1, 1), use_bias=False, name="conv")(f)
            return nn.relu(BatchNorm(use_running_average=not train, name="bn")(f))
        return nn.relu(nn.Dense(self.ch, name="fc")(f))


class ResidualBlock(nn.Module):
    ch: int

    @nn.compact
    def __call__(self, x, train: bool):
        pad = ((1, 1), (1, 1))
        y = nn.Conv(self.ch, (3, 3), padding=pad, use_bias=False, name="conv1")(x)
        y = nn.relu(BatchNorm(use_running_average=not train, name="bn1")(y))
        y = nn.Conv(self.ch, (3, 3), padding=pad, use_bias=False, name="conv2")(y)
        y = BatchNorm(use_running_average=not train, name="bn2")(y)
        return nn.relu(y + x)


class SharedExtractor(nn.Module):
    ch: int

    @nn.compact
    def __call__(self, x, train: bool):
        if x.ndim == 4:
            x = ResidualBlock(self.ch, name="res1")(x, train)
            return ResidualBlock(self.ch, name="res2")(x, train)
        return nn.Dense(self.ch, name="fc2")(nn.relu(nn.Dense(self.ch, name="fc1")(x)))


class CFLGroup(nn.Module):
    """One feature group: returns ``(h_s, [h_k], [D_k(h_k)])``."""

    ch: int
    c_t: tuple

    @nn.compact
    def __call__(self, f_s, f_ts, train: bool):
        extractor = SharedExtractor(self.ch, name="extractor")
        h_s = extractor(Aligner(self.ch, name="align_s")(f_s, train), train)
        h_ts, recs = [], []
        for k, (f, c) in enumerate(zip(f_ts, self.c_t)):
            h = extractor(Aligner(self.ch, name=f"align_t{k}")(f, train), train)
            h_ts.append(h)
            recs.append(nn.Dense(c, name=f"dec{k}")(h))  # 1×1 conv for maps
        return h_s, h_ts, recs


class CFLModules(nn.Module):
    names: tuple
    ch: tuple
    c_t: tuple

    @nn.compact
    def __call__(self, s_list, t_lists, train: bool = False):
        return [CFLGroup(ch, ct, name=f"group_{n}")(fs, fts, train)
                for n, ch, ct, fs, fts in zip(self.names, self.ch, self.c_t, s_list, t_lists)]


def grouper(s: Settings, teachers):
    """``gather(s_feats, t_feats)``: per group the student's feature and each teacher's, resized to it."""
    layers, t_layers = tuple(s.layers), s.teacher_layers or [s.layers] * len(teachers)
    t_key = "cfl.teacher_layers" if s.teacher_layers else "cfl.layers"

    def teacher_feature(g, k, f, f_s):
        ft = parts.feature(f, t_layers[k][g], f"teacher {k} ({teachers[k].arch})", t_key)
        if (ft.ndim == 4) != (f_s.ndim == 4):
            raise ConfigError(f"feature group {g}: the student's {layers[g]!r} and teacher {k}'s "
                              f"{t_layers[k][g]!r} must both be maps or both vectors")
        return parts.resize_to(ft, f_s)

    def gather(s_feats, t_feats):
        s_list = [parts.feature(s_feats, n, "the student", "cfl.layers") for n in layers]
        return s_list, [[teacher_feature(g, k, f, f_s) for k, f in enumerate(t_feats)] for g, f_s in enumerate(s_list)]

    return gather


def modules(s: Settings, s_list, t_lists) -> CFLModules:
    """The aligners, extractors and decoders of every group, sized from the features' shapes."""
    return CFLModules(tuple(s.layers), tuple(max(1, int(f.shape[-1] * float(s.ch_ratio))) for f in s_list),
                      tuple(tuple(f.shape[-1] for f in fts) for fts in t_lists))


def cfl_loss(w: tuple, T: float, logits, t_logits, outs, t_lists):
    """(``w0 kd + w1 Σ MMD²(h_s, h_k) + w2 Σ MSE(D_k(h_k), f_tk)``, metrics) from the groups' outputs."""
    l_amal = jnp.float32(0.0)
    l_rec = jnp.float32(0.0)
    for (h_s, h_ts, recs), fts in zip(outs, t_lists):
        for h_k, rec, f in zip(h_ts, recs, fts):
            l_amal = l_amal + mmd2(h_s, h_k)
            l_rec = l_rec + losses.mse(rec, f)
    l_kd = losses.kd(logits, t_logits, T)
    w0, w1, w2 = w
    return w0 * l_kd + w1 * l_amal + w2 * l_rec, {"kd": l_kd, "amal": l_amal, "rec": l_rec}


def objective(s: Settings, n_teachers: int, net: common.Net, module: CFLModules, gather):
    """``loss(params, batch_stats, teacher outputs, x, step)`` of the student and the CFL modules."""
    w, T = weights(s, n_teachers), float(s.T)

    def loss(params, batch_stats, t_out, x, step):
        logits, s_feats, s_bs = net.forward(params, batch_stats, x, train=True)
        t_logits = jnp.concatenate([t for t, _ in t_out], axis=-1)
        s_list, t_lists = gather(s_feats, [f for _, f in t_out])
        outs, b_bs = parts.apply_blocks(module, params, batch_stats, (s_list, t_lists))
        total, metrics = cfl_loss(w, T, logits, t_logits, outs, t_lists)
        return total, ({"student": s_bs, "blocks": b_bs}, metrics)

    return loss


def build(ctx):
    s, teachers = ctx.settings, ctx.teachers
    data, net = parts.union_student(ctx, "cfl")
    gather = grouper(s, teachers)
    module = modules(s, *parts.shapes(ctx, net, data, gather))
    return parts.program(ctx, "cfl", data, net, module, gather, objective(s, len(teachers), net, module, gather))


METHOD = Method("cfl", build=build, settings=Settings, check=all_checks(need_teachers("cfl"), check),
                summary="common feature learning: heterogeneous teachers, MMD in a shared feature space",
                h100_mfu=0.138)
