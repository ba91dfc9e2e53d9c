"""ResNets: ResNet-18/34/50 in the torchvision ImageNet layout (v1.5: stride on the 3x3 conv), and the
CIFAR ResNet ("8x" layout of DAFL / CMI / KAmalEngine, and RepDistiller's ``resnetv2.py``
ResNet18/34/50): the same stages after a 3x3 stem without max-pool.

BasicBlocks, or Bottlenecks (1x1, 3x3, 1x1 ×4) for the 50s. Flax names mirror the PyTorch ones:
``conv1``, ``bn1``, ``layer{s}_{i}/{conv1,bn1,conv2,bn2[,conv3,bn3],downsample_0,downsample_1}``, ``fc``;
the CIFAR ResNet names the shortcut ``shortcut_0,shortcut_1`` and the head ``linear``.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jka.models.layers import BatchNorm, classify, conv_bn

PAD1 = ((1, 1), (1, 1))


class Block(nn.Module):
    """A BasicBlock (or a Bottleneck), ReLU after the sum with the shortcut: a 1x1 conv + BN named
    ``{shortcut}_0``/``{shortcut}_1`` when the shape changes, else the input."""
    planes: int
    stride: int = 1
    bottleneck: bool = False
    shortcut: str = "downsample"
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
            down = conv(out_planes, 1, self.stride, "VALID", f"{self.shortcut}_0")
            shortcut = conv_bn(self, x, down, bn(f"{self.shortcut}_1"), train)
        return nn.relu(out + shortcut)


class ResNet(nn.Module):
    num_classes: int
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    bottleneck: bool = False
    dtype: Any = jnp.float32
    cifar = False  # the CIFAR ResNet: a 3x3 stem without max-pool, ``shortcut``, ``linear``

    @nn.compact
    def __call__(self, x, train: bool = False):
        k, s = (3, 1) if self.cifar else (7, 2)
        stem = nn.Conv(64, (k, k), (s, s), padding=((k // 2, k // 2),) * 2, use_bias=False, dtype=self.dtype,
                       name="conv1")
        bn1 = BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn1")
        x = nn.relu(conv_bn(self, x, stem, bn1, train))
        if not self.cifar:
            x = nn.max_pool(x, (3, 3), (2, 2), padding=PAD1)
        feats = {"stem": x}
        for s, (n, planes) in enumerate(zip(self.stage_sizes, (64, 128, 256, 512))):
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                x = Block(planes, stride, self.bottleneck, "shortcut" if self.cifar else "downsample", self.dtype,
                          name=f"layer{s + 1}_{i}")(x, train)
            feats[f"layer{s + 1}"] = x
        return classify(self, x, feats, "linear" if self.cifar else "fc")


class CifarResNet(ResNet):
    cifar = True


def _resnet(cls, stage_sizes, bottleneck=False):
    def make(num_classes, dtype=jnp.float32, **kw):
        return cls(num_classes, stage_sizes, bottleneck, dtype=dtype, **kw)
    return make


MODELS = {f"{prefix}resnet{d}": _resnet(cls, sizes, d == 50) for prefix, cls in (("", ResNet), ("cifar_", CifarResNet))
          for d, sizes in ((18, (2, 2, 2, 2)), (34, (3, 4, 6, 3)), (50, (3, 4, 6, 3)))}
