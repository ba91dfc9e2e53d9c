"""ResNet-18/34/50 in the torchvision ImageNet layout (v1.5: stride on the 3x3 conv).

Flax names mirror torchvision: ``conv1``, ``bn1``, ``layer{s}_{i}/{conv1,bn1,conv2,bn2[,conv3,bn3],
downsample_0,downsample_1}``, ``fc``.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jka.models.layers import BatchNorm, conv_bn

PAD1 = ((1, 1), (1, 1))


class _Block(nn.Module):
    planes: int
    stride: int = 1
    bottleneck: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        bn = lambda name: BatchNorm(use_running_average=not train, dtype=self.dtype, name=name)
        conv = lambda f, k, s, pad, name: nn.Conv(f, (k, k), (s, s), padding=pad, use_bias=False, dtype=self.dtype,
                                                  name=name)
        if self.bottleneck:
            out_planes = self.planes * 4
            out = nn.relu(conv_bn(self, x, conv(self.planes, 1, 1, "VALID", "conv1"), bn("bn1"), train))
            out = nn.relu(conv_bn(self, out, conv(self.planes, 3, self.stride, PAD1, "conv2"), bn("bn2"), train))
            out = conv_bn(self, out, conv(out_planes, 1, 1, "VALID", "conv3"), bn("bn3"), train)
        else:
            out_planes = self.planes
            out = nn.relu(conv_bn(self, x, conv(self.planes, 3, self.stride, PAD1, "conv1"), bn("bn1"), train))
            out = conv_bn(self, out, conv(self.planes, 3, 1, PAD1, "conv2"), bn("bn2"), train)
        shortcut = x
        if self.stride != 1 or x.shape[-1] != out_planes:
            down = conv(out_planes, 1, self.stride, "VALID", "downsample_0")
            shortcut = conv_bn(self, x, down, bn("downsample_1"), train)
        return nn.relu(out + shortcut)


class ResNet(nn.Module):
    num_classes: int
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    bottleneck: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        feats = {}
        stem = nn.Conv(64, (7, 7), (2, 2), padding=((3, 3), (3, 3)), use_bias=False, dtype=self.dtype, name="conv1")
        x = nn.relu(conv_bn(self, x, stem, BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn1"), train))
        x = nn.max_pool(x, (3, 3), (2, 2), padding=PAD1)
        feats["stem"] = x
        for s, (n, planes) in enumerate(zip(self.stage_sizes, (64, 128, 256, 512))):
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                x = _Block(planes, stride, self.bottleneck, dtype=self.dtype, name=f"layer{s + 1}_{i}")(x, train)
            feats[f"layer{s + 1}"] = x
        pooled = jnp.mean(x, axis=(1, 2))
        feats["pooled"] = pooled
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(pooled)
        return logits.astype(jnp.float32), feats


def resnet18(num_classes, dtype=jnp.float32, **kw):
    return ResNet(num_classes, (2, 2, 2, 2), False, dtype=dtype, **kw)


def resnet34(num_classes, dtype=jnp.float32, **kw):
    return ResNet(num_classes, (3, 4, 6, 3), False, dtype=dtype, **kw)


def resnet50(num_classes, dtype=jnp.float32, **kw):
    return ResNet(num_classes, (3, 4, 6, 3), True, dtype=dtype, **kw)
