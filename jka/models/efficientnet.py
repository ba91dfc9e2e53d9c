"""EfficientNet-B0 (Tan & Le 2019) in timm's layout (``efficientnet_b0``: symmetric padding, not TF's 'same').

Stem ``conv_stem``/``bn1`` (3x3, stride 2, 32 channels), seven stages of mobile inverted bottlenecks
``blocks_{s}_{i}``, then ``conv_head``/``bn2`` (1x1, 1280) and the ``classifier``. Stage 0 is a
depthwise-separable block (``conv_dw``, ``bn1``, squeeze-excite, ``conv_pw``, ``bn2``); the others
expand (``conv_pw``, ``bn1``), filter depthwise (``conv_dw``, ``bn2``), squeeze-excite, and project
(``conv_pwl``, ``bn3``, no activation). Squeeze-excite: global mean → ``se/conv_reduce`` (a quarter
of the block's *input* channels) → SiLU → ``se/conv_expand`` → sigmoid, a gate per channel. The
activation is SiLU; a block adds its input back when it keeps the stride and the channels. A k×k
convolution of stride s pads ``((s − 1) + (k − 1)) // 2`` on every side (timm's symmetric rule).
Dropout and stochastic depth (zero at inference) are not modelled.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jka.models.layers import BatchNorm, classify, conv_bn

# kind, repeats, kernel, stride (first repeat), expansion, output channels; squeeze-excite ratio 0.25
B0_STAGES = (("ds", 1, 3, 1, 1, 16), ("ir", 2, 3, 2, 6, 24), ("ir", 2, 5, 2, 6, 40), ("ir", 3, 3, 2, 6, 80),
             ("ir", 3, 5, 1, 6, 112), ("ir", 4, 5, 2, 6, 192), ("ir", 1, 3, 1, 6, 320))
SE_RATIO = 0.25


def _conv(features, kernel, stride=1, groups=1, dtype=jnp.float32, name=None, bias=False):
    p = ((stride - 1) + (kernel - 1)) // 2
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding=((p, p), (p, p)), feature_group_count=groups,
                   use_bias=bias, dtype=dtype, name=name)


class SqueezeExcite(nn.Module):
    reduced: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = nn.silu(_conv(self.reduced, 1, dtype=self.dtype, name="conv_reduce", bias=True)(s))
        return x * nn.sigmoid(_conv(x.shape[-1], 1, dtype=self.dtype, name="conv_expand", bias=True)(s))


class MBConv(nn.Module):
    """A depthwise-separable (``expansion`` None) or inverted-residual block (module docstring)."""

    out: int
    kernel: int
    stride: int
    expansion: int | None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        bn = lambda name: BatchNorm(use_running_average=not train, dtype=self.dtype, name=name)  # noqa: E731
        conv = lambda *a, **k: _conv(*a, dtype=self.dtype, **k)  # noqa: E731
        cin = x.shape[-1]
        se = SqueezeExcite(max(1, int(cin * SE_RATIO)), self.dtype, name="se")
        if self.expansion is None:
            h = nn.silu(bn("bn1")(conv(cin, self.kernel, self.stride, cin, name="conv_dw")(x)))
            h = conv_bn(self, se(h), conv(self.out, 1, name="conv_pw"), bn("bn2"), train)
        else:
            mid = cin * self.expansion
            h = nn.silu(conv_bn(self, x, conv(mid, 1, name="conv_pw"), bn("bn1"), train))
            h = nn.silu(bn("bn2")(conv(mid, self.kernel, self.stride, mid, name="conv_dw")(h)))
            h = conv_bn(self, se(h), conv(self.out, 1, name="conv_pwl"), bn("bn3"), train)
        return x + h if self.stride == 1 and cin == self.out else h


class EfficientNet(nn.Module):
    num_classes: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        bn = lambda name: BatchNorm(use_running_average=not train, dtype=self.dtype, name=name)  # noqa: E731
        feats = {}
        x = nn.silu(conv_bn(self, x, _conv(32, 3, 2, dtype=self.dtype, name="conv_stem"), bn("bn1"), train))
        for s, (kind, repeats, kernel, stride, expansion, out) in enumerate(B0_STAGES):
            for i in range(repeats):
                x = MBConv(out, kernel, stride if i == 0 else 1, None if kind == "ds" else expansion, self.dtype,
                           name=f"blocks_{s}_{i}")(x, train)
            feats[f"stage{s}"] = x
        x = nn.silu(conv_bn(self, x, _conv(1280, 1, dtype=self.dtype, name="conv_head"), bn("bn2"), train))
        return classify(self, x, feats, "classifier")
