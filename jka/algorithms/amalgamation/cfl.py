"""Common Feature Learning, CFL (docs/methods.md, "Common feature learning"; IJCAI 2019):
amalgamation from heterogeneous teachers.

Per feature group (``amal.layers``: student feature names; ``amal.teacher_layers``: one list of
names per teacher, default the same names), with ``ch = C_s · amal.ch_ratio`` (default C_s/4):

    aligners A_s, A_k   1×1 conv + BN + ReLU for maps, Linear + ReLU for vectors, → ch
    shared extractor E  two residual blocks (conv3×3-BN-ReLU-conv3×3-BN, + identity, ReLU) for
                        maps, two Linear layers (Linear-ReLU-Linear) for vectors
    decoders D_k        1×1 conv / Linear ch → C_tk
    h_s = E(A_s f_s),  h_k = E(A_k f_tk)
    L_amal = Σ_groups Σ_k MMD²(h_s, h_k)     (jka.losses.amalgamation.mmd2: rows L2-normalised,
                                               σ ∈ {0.001, 0.01, 0.05, 0.1, 0.2, 1, 2}, biased, ≥ 0)
    L_rec  = Σ_groups Σ_k MSE(D_k(h_k), f_tk)
    L      = w0 kd(s, concat_k t_k, T) + w1 L_amal + w2 L_rec     (default 1, 10, 10)

Student, aligners (teacher-side too), extractor and decoders train together. Teacher maps whose
spatial size differs from the student's (different architectures, e.g. a WRN whose last stage is
at 1/4 of the input and a small_cnn at 1/2) are resized bilinearly to the student's size before
their aligner, so ``h_s`` and ``h_k`` have the same shape for the MMD.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jka import losses
from jka.algorithms.amalgamation.common import MultiPartAmalgamation, resize_to
from jka.errors import ConfigError
from jka.losses.amalgamation import mmd2
from jka.models.layers import BatchNorm


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


class CommonFeatureLearning(MultiPartAmalgamation):
    name = "cfl"
    # weights None: the paper's (1, 10, 10), or (1, 20, 20) with four or more teachers
    amal_defaults = dict(layers=["block3"], teacher_layers=None, weights=None, T=1.0, ch_ratio=0.25)

    def __init__(self, cfg, teachers):
        super().__init__(cfg, teachers)
        self.layers = tuple(self.amal.layers)
        if not self.layers:
            raise ConfigError("cfl needs amal.layers, the student feature names to align (e.g. ['block3', 'pooled'])")
        t_layers = self.amal.teacher_layers
        if t_layers is None:
            t_layers = [list(self.layers) for _ in self.teachers]
        if len(t_layers) != len(self.teachers) or any(len(ls) != len(self.layers) for ls in t_layers):
            raise ConfigError("amal.teacher_layers needs one list per teacher, each as long as amal.layers")
        self.teacher_layers = [tuple(ls) for ls in t_layers]
        weights = self.amal.weights
        if weights is None:
            weights = (1.0, 20.0, 20.0) if len(self.teachers) >= 4 else (1.0, 10.0, 10.0)
        self.weights = tuple(float(w) for w in weights)
        if len(self.weights) != 3:
            raise ConfigError(f"amal.weights must be (w_kd, w_amal, w_rec); got {self.weights}")
        self.ch_ratio = float(self.amal.ch_ratio)
        self.T = float(self.amal.T)

    def gather(self, s_feats, t_feats):
        s_list = [self.feature(s_feats, n, "the student") for n in self.layers]
        t_lists = []
        for g, s in enumerate(s_list):
            fts = []
            for k, f in enumerate(t_feats):
                ft = self.feature(f, self.teacher_layers[k][g], f"teacher {k} ({self.teachers[k].arch})")
                if (ft.ndim == 4) != (s.ndim == 4):
                    raise ConfigError(f"feature group {g}: the student's {self.layers[g]!r} and teacher {k}'s "
                                      f"{self.teacher_layers[k][g]!r} must both be maps or both vectors")
                fts.append(resize_to(ft, s))
            t_lists.append(fts)
        return s_list, t_lists

    def build_modules(self, s_feats, t_feats):
        s_list, t_lists = self.gather(s_feats, t_feats)
        return CFLModules(self.layers, tuple(max(1, int(s.shape[-1] * self.ch_ratio)) for s in s_list),
                          tuple(tuple(f.shape[-1] for f in fts) for fts in t_lists))

    def module_inputs(self, s_feats, t_feats):
        return self.gather(s_feats, t_feats)

    def amal_loss(self, params, batch_stats, t_out, x, step):
        s, s_feats, s_bs = self.apply_student(params["student"], batch_stats["student"], x, train=True)
        t_logits = jnp.concatenate([t for t, _ in t_out], axis=-1)
        t_feats = [f for _, f in t_out]
        outs, b_bs = self.apply_modules(params, batch_stats, s_feats, t_feats)
        _, t_lists = self.gather(s_feats, t_feats)
        l_amal = jnp.float32(0.0)
        l_rec = jnp.float32(0.0)
        for (h_s, h_ts, recs), fts in zip(outs, t_lists):
            for h_k, rec, f in zip(h_ts, recs, fts):
                l_amal = l_amal + mmd2(h_s, h_k)
                l_rec = l_rec + losses.mse(rec, f)
        l_kd = losses.kd(s, t_logits, self.T)
        w0, w1, w2 = self.weights
        loss = w0 * l_kd + w1 * l_amal + w2 * l_rec
        return loss, ({"student": s_bs, "blocks": b_bs}, {"kd": l_kd, "amal": l_amal, "rec": l_rec})
