"""Trainable helpers of the distillation zoo (adapters, regressors, embedders, σ) and, per method,
one Flax module ``Extra`` that maps the selected student/teacher features to ``L_extra``.

Every ``Extra`` is built from the teacher's feature shapes and called as
``extra(fs_list, ft_list, train) -> {'extra': L_extra[, 'aux': a loss trained alongside]}``;
its parameters are the ``'aux'`` part of the distillation state.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jka import losses
from jka.errors import ConfigError
from jka.losses import distill as terms, l2_normalize
from jka.losses.distill._common import pool_to_smaller
from jka.losses.distill.vid import EPS as VID_EPS
from jka.models.layers import BatchNorm


class ConvRegressor(nn.Module):
    """FitNet's ``R``: a conv chosen from the two shapes, then BN + ReLU, ``F_s → shape of F_t``.

    ``H_s = 2 H_t``: 3×3 stride-2 conv; ``2 H_s = H_t``: 4×4 stride-2 transposed conv;
    ``H_s ≥ H_t``: a valid conv with kernel ``1 + H_s − H_t`` (1×1 for equal sizes).
    """

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
    """CC on linear embeddings of the pooled features; ``normalise`` (``distill.cc_normalise``) is jka's
    L2-normalised variant, off as in the reference code."""

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


def build_extra(method: str, t_shapes, cc_normalise: bool = False) -> nn.Module:
    """The ``Extra`` module of ``method`` for teacher features of shapes ``t_shapes``."""
    t_shapes = tuple(tuple(int(d) for d in s) for s in t_shapes)
    term = terms.get(method)
    name = term.name
    if name == "kd":
        return NoExtra(t_shapes)
    if name == "hint":
        return HintExtra(t_shapes)
    if name in ("at", "nst"):
        return FeatureExtra(t_shapes, term.fn)
    if name in ("sp", "rkd", "pkt"):
        return FeatureExtra(t_shapes, term.fn, single=True)
    if name == "cc":
        return CCExtra(t_shapes, normalise=bool(cc_normalise))
    if name == "vid":
        return VIDExtra(t_shapes)
    if name in ("svd", "fsp"):
        return AdaptedExtra(t_shapes, term.fn)
    if name == "ft":
        return FTExtra(t_shapes)
    raise AssertionError(name)
