"""MobileNetV2 in the torchvision layout, and the CIFAR KD benchmark's (``mobile_half``, at the end).

Flax names mirror torchvision's sequential indices: ``features_0_0`` / ``features_0_1`` (stem conv /
BN), ``features_{k}`` (inverted residual k = 1..17) holding ``conv_0_0``/``conv_0_1`` (1x1 expand
conv/BN, only when t != 1), then the depthwise ``conv_{d}_0``/``conv_{d}_1``, the 1x1 projection
conv ``conv_{d+1}`` and its BN ``conv_{d+2}`` (d = 1 when expanding, else 0), then
``features_18_0``/``features_18_1`` (last 1x1 conv/BN) and ``classifier_1``.

Dropout (p=0.2 before the classifier in torchvision) is omitted: it has no parameters.
``stem_stride=1`` keeps more resolution for CIFAR-size inputs.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jka.models.layers import BatchNorm, classify

# t (expansion), c (channels), n (repeats), s (stride of the first repeat)
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to a multiple of ``divisor`` without going more than 10% down (torchvision rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def conv(features, kernel, stride, groups, dtype, name):
    """A bias-free ``kernel``×``kernel`` conv with PyTorch's symmetric padding ``(kernel − 1) // 2``."""
    p = (kernel - 1) // 2
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding=((p, p), (p, p)),
                   feature_group_count=groups, use_bias=False, dtype=dtype, name=name)


class InvertedResidual(nn.Module):
    out_planes: int
    stride: int
    expand_ratio: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        bn = lambda name: BatchNorm(use_running_average=not train, dtype=self.dtype, name=name)
        inp = x.shape[-1]
        hidden = int(round(inp * self.expand_ratio))
        out = x
        d = 0
        if self.expand_ratio != 1:
            out = nn.relu6(bn("conv_0_1")(conv(hidden, 1, 1, 1, self.dtype, "conv_0_0")(out)))
            d = 1
        out = conv(hidden, 3, self.stride, hidden, self.dtype, f"conv_{d}_0")(out)
        out = nn.relu6(bn(f"conv_{d}_1")(out))
        out = conv(self.out_planes, 1, 1, 1, self.dtype, f"conv_{d + 1}")(out)
        out = bn(f"conv_{d + 2}")(out)
        if self.stride == 1 and inp == self.out_planes:
            out = x + out
        return out


class MobileNetV2(nn.Module):
    num_classes: int
    width: float = 1.0
    stem_stride: int = 2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        bn = lambda name: BatchNorm(use_running_average=not train, dtype=self.dtype, name=name)
        feats = {}
        x = conv(make_divisible(32 * self.width), 3, self.stem_stride, 1, self.dtype, "features_0_0")(x)
        x = nn.relu6(bn("features_0_1")(x))
        k, stage = 1, 0
        for t, c, n, s in SETTINGS:
            out_planes = make_divisible(c * self.width)
            for i in range(n):
                stride = s if i == 0 else 1
                if stride != 1 and k > 1:  # resolution changes: the previous stage ends here
                    stage += 1
                    feats[f"stage{stage}"] = x
                x = InvertedResidual(out_planes, stride, t, dtype=self.dtype, name=f"features_{k}")(x, train)
                k += 1
        last = make_divisible(1280 * max(1.0, self.width))
        x = conv(last, 1, 1, 1, self.dtype, f"features_{k}_0")(x)
        x = nn.relu6(bn(f"features_{k}_1")(x))
        feats[f"stage{stage + 1}"] = x
        return classify(self, x, feats, "classifier_1")


# ---------------------------------------------------------------- the CIFAR KD benchmark's MobileNetV2

class ZooInvertedResidual(nn.Module):
    """The benchmark's block: always a 1x1 expansion (even for t = 1), ReLU (not ReLU6). Flax names
    mirror its ``conv`` Sequential: ``conv_0``/``conv_1`` expand conv/BN, ``conv_3``/``conv_4``
    depthwise conv/BN, ``conv_6``/``conv_7`` projection conv/BN."""
    out_planes: int
    stride: int
    expand_ratio: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        bn = lambda name: BatchNorm(use_running_average=not train, dtype=self.dtype, name=name)
        hidden = x.shape[-1] * self.expand_ratio
        out = nn.relu(bn("conv_1")(conv(hidden, 1, 1, 1, self.dtype, "conv_0")(x)))
        out = nn.relu(bn("conv_4")(conv(hidden, 3, self.stride, hidden, self.dtype, "conv_3")(out)))
        out = bn("conv_7")(conv(self.out_planes, 1, 1, 1, self.dtype, "conv_6")(out))
        return x + out if self.stride == 1 and x.shape[-1] == self.out_planes else out


# t (expansion; None: the network's T), c, n, s of the benchmark (its second stage keeps stride 1)
ZOO_SETTINGS = ((1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2), (None, 64, 4, 2), (None, 96, 3, 1),
                (None, 160, 3, 2), (None, 320, 1, 1))
ZOO_FEATURES = {1: "stage1", 2: "stage2", 4: "stage3", 6: "stage4"}  # after blocks k: the reference's f1..f4


class ZooMobileNetV2(nn.Module):
    """MobileNetV2 of the CIFAR KD benchmark (RepDistiller / mdistiller ``mobilenetv2.py``;
    ``mobile_half`` = width 0.5, T = 6). Widths are ``int(c · width)`` (no rounding to 8); the stem is
    a stride-2 3x3 conv + BN + ReLU (``conv1_0``/``conv1_1``), the blocks are ``blocks_{k}_{i}``, the
    head a 1x1 conv to 1280 + BN + ReLU (``conv2_0``/``conv2_1``), global average pool (the
    reference's ``AvgPool2d(input/16)`` covers the whole 2x2 map of a 32 px input) and
    ``classifier_0``. Features: ``stem``, ``stage1..4`` (after blocks 1, 2, 4, 6), ``pooled``."""
    num_classes: int
    width: float = 0.5
    expansion: int = 6
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        bn = lambda name: BatchNorm(use_running_average=not train, dtype=self.dtype, name=name)
        x = nn.relu(bn("conv1_1")(conv(int(32 * self.width), 3, 2, 1, self.dtype, "conv1_0")(x)))
        feats = {"stem": x}
        for k, (t, c, n, s) in enumerate(ZOO_SETTINGS):
            for i in range(n):
                x = ZooInvertedResidual(int(c * self.width), s if i == 0 else 1, t or self.expansion,
                                        dtype=self.dtype, name=f"blocks_{k}_{i}")(x, train)
            if k in ZOO_FEATURES:
                feats[ZOO_FEATURES[k]] = x
        last = int(1280 * self.width) if self.width > 1.0 else 1280
        x = nn.relu(bn("conv2_1")(conv(last, 1, 1, 1, self.dtype, "conv2_0")(x)))
        return classify(self, x, feats, "classifier_0")
