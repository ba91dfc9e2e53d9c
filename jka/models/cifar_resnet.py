"""CIFAR ResNet ("8x" layout of DAFL / CMI / KAmalEngine): 3x3 stem, no max-pool.

Flax names mirror the PyTorch ones: ``conv1``, ``bn1``, ``layer{s}_{i}/{conv1,bn1,conv2,bn2,
shortcut_0,shortcut_1}``, ``linear``.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jka.models.layers import BatchNorm, conv_bn

PAD1 = ((1, 1), (1, 1))


class BasicBlock(nn.Module):
    planes: int
    stride: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        bn = lambda name: BatchNorm(use_running_average=not train, dtype=self.dtype, name=name)
        s = (self.stride, self.stride)
        conv = lambda k, s, pad, name: nn.Conv(self.planes, (k, k), s, padding=pad, use_bias=False, dtype=self.dtype,
                                               name=name)
        out = nn.relu(conv_bn(self, x, conv(3, s, PAD1, "conv1"), bn("bn1"), train))
        out = conv_bn(self, out, conv(3, (1, 1), PAD1, "conv2"), bn("bn2"), train)
        shortcut = x
        if self.stride != 1 or x.shape[-1] != self.planes:
            shortcut = conv_bn(self, x, conv(1, s, "VALID", "shortcut_0"), bn("shortcut_1"), train)
        return nn.relu(out + shortcut)


class CifarResNet(nn.Module):
    num_classes: int
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        feats = {}
        x = nn.relu(conv_bn(self, x, nn.Conv(64, (3, 3), padding=PAD1, use_bias=False, dtype=self.dtype, name="conv1"),
                            BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn1"), train))
        feats["stem"] = x
        for s, (n, planes) in enumerate(zip(self.stage_sizes, (64, 128, 256, 512))):
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                x = BasicBlock(planes, stride, dtype=self.dtype, name=f"layer{s + 1}_{i}")(x, train)
            feats[f"layer{s + 1}"] = x
        pooled = jnp.mean(x, axis=(1, 2))
        feats["pooled"] = pooled
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="linear")(pooled)
        return logits.astype(jnp.float32), feats


def cifar_resnet18(num_classes, dtype=jnp.float32, **kw):
    return CifarResNet(num_classes, (2, 2, 2, 2), dtype=dtype, **kw)


def cifar_resnet34(num_classes, dtype=jnp.float32, **kw):
    return CifarResNet(num_classes, (3, 4, 6, 3), dtype=dtype, **kw)
