"""The distillation zoo's extra terms, each one :class:`Term` of :data:`TERMS`: its formula (from
:mod:`jka.losses.distill`), its reference weights ``(α, β, γ)`` of ``L = α kd(s, t, T) + β CE(s, y) + γ
L_extra``, the features it reads (``where``) and its Flax module, built from the teacher's feature shapes
and called as ``extra(fs_list, ft_list, train) -> {'extra': L_extra[, 'aux': a loss trained alongside]}``
with the term's trainable helpers (the state's ``'aux'`` part). A new term: its formula in
``jka/losses/distill/`` and one line below (and its module, if it trains anything).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jka import losses
from jka.errors import ConfigError, unknown_choice
from jka.losses import distill as terms, l2_normalize
from jka.losses.distill._common import pool_to_smaller
from jka.losses.distill.vid import EPS as VID_EPS
from jka.models.layers import BatchNorm


class ConvRegressor(nn.Module):
    """FitNet's ``R``, ``F_s → shape of F_t``: a conv chosen from the two shapes (the branches below), BN, ReLU."""

    t_shape: Sequence[int]  # (H, W, C) of the teacher feature

    @nn.compact
    def __call__(self, x, train: bool):
        (hs, ws), (ht, wt, ct) = x.shape[1:3], tuple(self.t_shape)
        if hs == 2 * ht and ws == 2 * wt:
            x = nn.Conv(ct, (3, 3), (2, 2), padding=((1, 1), (1, 1)), name="conv")(x)
        elif 2 * hs == ht and 2 * ws == wt:
            x = nn.ConvTranspose(ct, (4, 4), (2, 2), padding="SAME", name="conv")(x)
        elif hs >= ht and ws >= wt:
            x = nn.Conv(ct, (1 + hs - ht, 1 + ws - wt), padding="VALID", name="conv")(x)
        else:
            raise ConfigError(f"hint: no regressor from a {hs}x{ws} student map to a {ht}x{wt} teacher map; "
                              "choose other stages with distill.student_stages / distill.teacher_stages")
        return nn.relu(BatchNorm(use_running_average=not train, name="bn")(x))


class Adapter(nn.Module):
    """1×1 conv to ``channels`` (identity when the width already matches)."""

    channels: int

    @nn.compact
    def __call__(self, x):
        if x.shape[-1] == self.channels:
            return x
        return nn.Conv(self.channels, (1, 1), use_bias=False, name="conv")(x)


class Embed(nn.Module):
    """Linear embedding to ``dim`` (CC's embedders), L2-normalised when ``normalise``."""

    dim: int = 128
    normalise: bool = False

    @nn.compact
    def __call__(self, x):
        x = jnp.reshape(x, (x.shape[0], -1)).astype(jnp.float32)
        e = nn.Dense(self.dim, name="linear")(x)
        return l2_normalize(e, axis=1) if self.normalise else e


class ConvBNAct(nn.Module):
    channels: int
    transpose: bool = False

    @nn.compact
    def __call__(self, x, train: bool):
        conv = nn.ConvTranspose if self.transpose else nn.Conv
        x = conv(self.channels, (3, 3), padding=((1, 1), (1, 1)) if not self.transpose else "SAME", name="conv")(x)
        return nn.leaky_relu(BatchNorm(use_running_average=not train, name="bn")(x), 0.1)


# -- one Extra per method ---------------------------------------------------------------------------
class NoExtra(nn.Module):
    t_shapes: Sequence[Sequence[int]] = ()

    def __call__(self, fs, ft, train: bool):
        return {"extra": jnp.zeros((), jnp.float32)}


class HintExtra(nn.Module):
    t_shapes: Sequence[Sequence[int]]

    @nn.compact
    def __call__(self, fs, ft, train: bool):
        r = ConvRegressor(tuple(self.t_shapes[0]), name="regressor")(fs[0].astype(jnp.float32), train)
        return {"extra": losses.mse(r, ft[0])}


class FeatureExtra(nn.Module):
    """Terms that compare the features directly (AT, SP, RKD, PKT, NST): no parameters."""

    t_shapes: Sequence[Sequence[int]]
    fn: Any
    single: bool = False

    def __call__(self, fs, ft, train: bool):
        return {"extra": self.fn(fs[0], ft[0]) if self.single else self.fn(fs, ft)}


class CCExtra(nn.Module):
    """CC on linear embeddings of the pooled features (``normalise``: jka's L2-normalised variant)."""

    t_shapes: Sequence[Sequence[int]]
    dim: int = 128
    normalise: bool = False

    @nn.compact
    def __call__(self, fs, ft, train: bool):
        e_s = Embed(self.dim, self.normalise, name="embed_s")(fs[0])
        return {"extra": terms.cc(e_s, Embed(self.dim, self.normalise, name="embed_t")(ft[0]))}


class VIDExtra(nn.Module):
    """Per stage: ``μ`` = conv1×1–ReLU–conv1×1–ReLU–conv1×1 (mid width = teacher width) and θ per channel."""

    t_shapes: Sequence[Sequence[int]]
    init_var: float = 5.0

    @nn.compact
    def __call__(self, fs, ft, train: bool):
        total = 0.0
        theta0 = math.log(math.expm1(self.init_var - VID_EPS))  # softplus(θ₀) + ε = init_var
        for i, (s, t, shape) in enumerate(zip(fs, ft, self.t_shapes)):
            c = shape[-1]
            s, t = pool_to_smaller(s.astype(jnp.float32), t)
            mu = nn.Conv(c, (1, 1), use_bias=False, name=f"mu{i}_0")(s)
            mu = nn.Conv(c, (1, 1), use_bias=False, name=f"mu{i}_1")(nn.relu(mu))
            mu = nn.Conv(c, (1, 1), use_bias=False, name=f"mu{i}_2")(nn.relu(mu))
            theta = self.param(f"theta{i}", nn.initializers.constant(theta0), (c,))
            total = total + terms.vid(mu, t, theta)
        return {"extra": total}


class AdaptedExtra(nn.Module):
    """SVD and FSP: the student's stages go through 1×1 adapters to the teacher's widths."""

    t_shapes: Sequence[Sequence[int]]
    fn: Any

    @nn.compact
    def __call__(self, fs, ft, train: bool):
        fs = [Adapter(shape[-1], name=f"adapter{i}")(f.astype(jnp.float32))
              for i, (f, shape) in enumerate(zip(fs, self.t_shapes))]
        return {"extra": self.fn(fs, ft)}


class FTExtra(nn.Module):
    """Factor transfer: paraphraser (teacher, trained by reconstruction) and translator (student)."""

    t_shapes: Sequence[Sequence[int]]
    rate: float = 0.5

    @nn.compact
    def __call__(self, fs, ft, train: bool):
        c_t = self.t_shapes[0][-1]
        c_f = max(1, int(round(c_t * self.rate)))
        t = ft[0].astype(jnp.float32)
        # Paraphraser: encoder to the factor, decoder back; reconstruction trains it.
        z = ConvBNAct(c_t, name="para_enc0")(t, train)
        z = ConvBNAct(c_f, name="para_enc1")(z, train)
        factor_t = ConvBNAct(c_f, name="para_enc2")(z, train)
        r = ConvBNAct(c_f, True, name="para_dec0")(factor_t, train)
        r = ConvBNAct(c_t, True, name="para_dec1")(r, train)
        r = ConvBNAct(c_t, True, name="para_dec2")(r, train)
        rec = losses.mse(r, t)
        # Translator: the student's map to a factor of the same width.
        c_s = fs[0].shape[-1]
        y = ConvBNAct(c_s, name="trans0")(fs[0].astype(jnp.float32), train)
        y = ConvBNAct(c_f, name="trans1")(y, train)
        factor_s = ConvBNAct(c_f, name="trans2")(y, train)
        return {"extra": terms.ft(factor_s, jax.lax.stop_gradient(factor_t)), "aux": rec}


@dataclasses.dataclass(frozen=True)
class Term:
    name: str
    fn: Optional[Callable]
    defaults: tuple  # (alpha, beta, gamma)
    where: str
    module: Callable  # (teacher feature shapes, cc_normalise) -> the Extra module


def _feature(fn, single=False):
    return lambda shapes, cc_normalise: FeatureExtra(shapes, fn, single)


TERMS = {t.name: t for t in (
    Term("kd", None, (0.9, 0.1, 0.0), "none", lambda shapes, _: NoExtra(shapes)),
    Term("hint", losses.mse, (0.9, 0.1, 100.0), "middle", lambda shapes, _: HintExtra(shapes)),
    Term("at", terms.attention, (1.0, 0.1, 1000.0), "stages", _feature(terms.attention)),
    Term("sp", terms.sp, (0.9, 0.1, 3000.0), "last", _feature(terms.sp, single=True)),
    Term("cc", terms.cc, (0.9, 0.1, 0.02), "pooled", lambda shapes, normalise: CCExtra(shapes, normalise=normalise)),
    Term("vid", terms.vid, (0.0, 1.0, 1.0), "stages", lambda shapes, _: VIDExtra(shapes)),
    Term("rkd", terms.rkd, (0.9, 0.1, 1.0), "pooled", _feature(terms.rkd, single=True)),
    Term("pkt", terms.pkt, (0.9, 0.1, 30000.0), "pooled", _feature(terms.pkt, single=True)),
    Term("nst", terms.nst, (0.9, 0.1, 50.0), "stages", _feature(terms.nst)),
    Term("svd", terms.svd, (0.9, 0.1, 10.0), "stages", lambda shapes, _: AdaptedExtra(shapes, terms.svd)),
    # The reference table leaves fsp/ft open. Chosen here (not from a table): fsp γ = 1, ft γ = 200; both trained
    # jointly from the start (the originals pre-train FSP / the paraphraser in a first phase).
    Term("fsp", terms.fsp, (0.9, 0.1, 1.0), "stem+stages", lambda shapes, _: AdaptedExtra(shapes, terms.fsp)),
    Term("ft", terms.ft, (0.9, 0.1, 200.0), "last", lambda shapes, _: FTExtra(shapes)),
)}
ALIASES = {"attention": "at", "fitnet": "hint"}
NAMES = tuple(TERMS) + tuple(ALIASES)


def get(name: str) -> Term:
    key = ALIASES.get(name, name)
    if key not in TERMS:
        raise unknown_choice("distillation method (distill.method)", name, NAMES)
    return TERMS[key]


def build_extra(name: str, t_shapes, cc_normalise: bool = False) -> nn.Module:
    """The ``Extra`` module of term ``name`` for teacher features of shapes ``t_shapes``."""
    return get(name).module(tuple(tuple(int(d) for d in s) for s in t_shapes), bool(cc_normalise))
