"""Pre-activation Wide ResNet (CRD / RepDistiller ``wrn.py``, also used by CMI), dropRate 0.

Flax names mirror the PyTorch ones: ``conv1``, ``block{b}/layer_{i}/{bn1,conv1,bn2,conv2,
convShortcut}``, ``bn1``, ``fc``.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jka.models.layers import BatchNorm, classify

PAD1 = ((1, 1), (1, 1))


class WRNBlock(nn.Module):
    out_planes: int
    stride: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        bn = lambda name: BatchNorm(use_running_average=not train, dtype=self.dtype, name=name)
        conv = lambda k, s, pad, name: nn.Conv(self.out_planes, (k, k), (s, s), padding=pad, use_bias=False,
                                               dtype=self.dtype, name=name)
        equal = x.shape[-1] == self.out_planes
        act = nn.relu(bn("bn1")(x))
        out = conv(3, self.stride, PAD1, "conv1")(act)
        out = nn.relu(bn("bn2")(out))
        out = conv(3, 1, PAD1, "conv2")(out)
        # As in the original: identity shortcut on the raw input when widths are equal,
        # otherwise a 1x1 conv on the activated input.
        shortcut = x if equal else conv(1, self.stride, "VALID", "convShortcut")(act)
        return shortcut + out


class NetworkBlock(nn.Module):
    num_layers: int
    out_planes: int
    stride: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i in range(self.num_layers):
            x = WRNBlock(self.out_planes, self.stride if i == 0 else 1, dtype=self.dtype, name=f"layer_{i}")(x, train)
        return x


class WideResNet(nn.Module):
    num_classes: int
    depth: int = 16
    widen_factor: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        assert (self.depth - 4) % 6 == 0, "WRN depth must be 6n+4"
        n = (self.depth - 4) // 6
        k = self.widen_factor
        feats = {}
        x = nn.Conv(16, (3, 3), padding=PAD1, use_bias=False, dtype=self.dtype, name="conv1")(x)
        for b, (width, stride) in enumerate(((16 * k, 1), (32 * k, 2), (64 * k, 2))):
            x = NetworkBlock(n, width, stride, dtype=self.dtype, name=f"block{b + 1}")(x, train)
            feats[f"block{b + 1}"] = x
        x = nn.relu(BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn1")(x))
        return classify(self, x, feats, "fc")


def factory(depth, k):
    def make(num_classes, dtype=jnp.float32, **kw):
        return WideResNet(num_classes, depth, k, dtype=dtype, **kw)
    return make
