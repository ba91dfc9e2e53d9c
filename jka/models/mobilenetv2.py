"""MobileNetV2 in the torchvision layout.

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

from jka.models.layers import BatchNorm

# t (expansion), c (channels), n (repeats), s (stride of the first repeat)
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to a multiple of ``divisor`` without going more than 10% down (torchvision rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _conv(features, kernel, stride, groups, dtype, name):
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
            out = nn.relu6(bn("conv_0_1")(_conv(hidden, 1, 1, 1, self.dtype, "conv_0_0")(out)))
            d = 1
        out = _conv(hidden, 3, self.stride, hidden, self.dtype, f"conv_{d}_0")(out)
        out = nn.relu6(bn(f"conv_{d}_1")(out))
        out = _conv(self.out_planes, 1, 1, 1, self.dtype, f"conv_{d + 1}")(out)
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
        x = _conv(make_divisible(32 * self.width), 3, self.stem_stride, 1, self.dtype, "features_0_0")(x)
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
        x = _conv(last, 1, 1, 1, self.dtype, f"features_{k}_0")(x)
        x = nn.relu6(bn(f"features_{k}_1")(x))
        feats[f"stage{stage + 1}"] = x
        pooled = jnp.mean(x, axis=(1, 2))
        feats["pooled"] = pooled
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier_1")(pooled)
        return logits.astype(jnp.float32), feats


def mobilenetv2(num_classes, dtype=jnp.float32, width=1.0, **kw):
    return MobileNetV2(num_classes, width, dtype=dtype, **kw)


def mobilenetv2_x0_5(num_classes, dtype=jnp.float32, **kw):
    return MobileNetV2(num_classes, 0.5, dtype=dtype, **kw)
