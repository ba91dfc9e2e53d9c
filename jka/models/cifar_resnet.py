"""CIFAR ResNet ("8x" layout of DAFL / CMI / KAmalEngine, and RepDistiller's ``resnetv2.py``
ResNet18/34/50): 3x3 stem, no max-pool; BasicBlocks, or Bottlenecks (1x1, 3x3, 1x1 ×4) for
``cifar_resnet50``.

Flax names mirror the PyTorch ones: ``conv1``, ``bn1``, ``layer{s}_{i}/{conv1,bn1,conv2,bn2[,conv3,bn3],
shortcut_0,shortcut_1}``, ``linear``.
"""
from __future__ import annotations

from typing import Any, Sequence, Type

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


class Bottleneck(nn.Module):
    """1x1 → 3x3 (stride) → 1x1 to ``4 · planes``, each with BN, ReLU after the sum with the shortcut."""
    planes: int
    stride: int = 1
    dtype: Any = jnp.float32
    expansion = 4

    @nn.compact
    def __call__(self, x, train: bool = False):
        bn = lambda name: BatchNorm(use_running_average=not train, dtype=self.dtype, name=name)
        s, out_planes = (self.stride, self.stride), self.planes * self.expansion
        conv = lambda c, k, s, pad, name: nn.Conv(c, (k, k), s, padding=pad, use_bias=False, dtype=self.dtype,
                                                  name=name)
        out = nn.relu(conv_bn(self, x, conv(self.planes, 1, (1, 1), "VALID", "conv1"), bn("bn1"), train))
        out = nn.relu(conv_bn(self, out, conv(self.planes, 3, s, PAD1, "conv2"), bn("bn2"), train))
        out = conv_bn(self, out, conv(out_planes, 1, (1, 1), "VALID", "conv3"), bn("bn3"), train)
        shortcut = x
        if self.stride != 1 or x.shape[-1] != out_planes:
            shortcut = conv_bn(self, x, conv(out_planes, 1, s, "VALID", "shortcut_0"), bn("shortcut_1"), train)
        return nn.relu(out + shortcut)


class CifarResNet(nn.Module):
    num_classes: int
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    block: Type[nn.Module] = BasicBlock
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
                x = self.block(planes, stride, dtype=self.dtype, name=f"layer{s + 1}_{i}")(x, train)
            feats[f"layer{s + 1}"] = x
        pooled = jnp.mean(x, axis=(1, 2))
        feats["pooled"] = pooled
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="linear")(pooled)
        return logits.astype(jnp.float32), feats


def cifar_resnet18(num_classes, dtype=jnp.float32, **kw):
    return CifarResNet(num_classes, (2, 2, 2, 2), dtype=dtype, **kw)


def cifar_resnet34(num_classes, dtype=jnp.float32, **kw):
    return CifarResNet(num_classes, (3, 4, 6, 3), dtype=dtype, **kw)


def cifar_resnet50(num_classes, dtype=jnp.float32, **kw):
    return CifarResNet(num_classes, (3, 4, 6, 3), Bottleneck, dtype=dtype, **kw)
