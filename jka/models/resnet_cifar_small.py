"""CIFAR ResNet-(6n+2) of He et al. (3 stages 16/32/64, BasicBlocks), optionally with branches.

``depth=32`` gives n = 5 blocks per stage. ``resnet8 .. resnet110``, ``resnet8x4`` and ``resnet32x4``
are the CIFAR-100 KD benchmark's networks (RepDistiller / mdistiller ``models/resnet.py``): the ``x4``
ones have a 32-wide stem and stages 64/128/256 (``stem=32, widths=(64, 128, 256)``). Their PyTorch
checkpoints name the shortcut ``downsample`` and the head ``fc``; :mod:`jka.convert.families` maps them. With ``num_branches = K > 1`` the stages up to
``shared_stages`` form a shared trunk and every branch owns private copies of the later stages and
its own classifier (the FFL reference network: trunk to stage 2, two private stage-3 branches).

* ``num_branches == 1``: returns ``(logits, features)`` like every zoo model (features ``stem``,
  ``layer1..3``, ``pooled``).
* ``num_branches > 1``: returns ``(list of K logits, list of K feature dicts)``; shared stages
  appear in every branch's dict.

Shortcuts are 1×1 conv + BN when the shape changes. Flax names: ``conv1``/``bn1``,
``layer{s}_{i}`` (shared) or ``branch{k}_layer{s}_{i}``, ``linear`` or ``branch{k}_linear``.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jka.errors import ConfigError
from jka.models.layers import BatchNorm, classify
from jka.models.resnet import PAD1, Block


class CifarResNetSmall(nn.Module):
    num_classes: int
    depth: int = 32
    widths: Sequence[int] = (16, 32, 64)
    stem: int = 0  # the stem conv's width; 0: widths[0]
    num_branches: int = 1
    shared_stages: int = 2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        if (self.depth - 2) % 6 or self.depth < 8:
            raise ConfigError(f"CIFAR ResNet depth must be 6n+2 (8, 14, 20, 32, 56, ...), got {self.depth}")
        if not 0 <= self.shared_stages <= len(self.widths):
            raise ConfigError(f"shared_stages must be in 0..{len(self.widths)}, got {self.shared_stages}")
        n = (self.depth - 2) // 6
        multi = self.num_branches > 1
        x = nn.Conv(self.stem or self.widths[0], (3, 3), padding=PAD1, use_bias=False, dtype=self.dtype, name="conv1")(x)
        x = nn.relu(BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn1")(x))
        shared = {"stem": x}

        def stage(h, s, prefix):
            for i in range(n):
                h = Block(self.widths[s], 2 if (s > 0 and i == 0) else 1, shortcut="shortcut", dtype=self.dtype,
                          name=f"{prefix}layer{s + 1}_{i}")(h, train)
            return h

        trunk = self.shared_stages if multi else len(self.widths)
        for s in range(trunk):
            x = stage(x, s, "")
            shared[f"layer{s + 1}"] = x
        all_logits, all_feats = [], []
        for k in range(self.num_branches):
            prefix = f"branch{k}_" if multi else ""
            h, feats = x, dict(shared)
            for s in range(trunk, len(self.widths)):
                h = stage(h, s, prefix)
                feats[f"layer{s + 1}"] = h
            logits, feats = classify(self, h, feats, f"{prefix}linear")
            all_logits.append(logits)
            all_feats.append(feats)
        if not multi:
            return all_logits[0], all_feats[0]
        return all_logits, all_feats


def _resnet(depth, stem=0, widths=(16, 32, 64)):
    def make(num_classes, dtype=jnp.float32, **kw):
        return CifarResNetSmall(num_classes, **{"depth": depth, "widths": widths, "stem": stem, **kw}, dtype=dtype)
    return make


cifar_resnet32, cifar_resnet8 = _resnet(32), _resnet(8)
MODELS = {"cifar_resnet32": cifar_resnet32, "cifar_resnet8": cifar_resnet8,
          **{f"resnet{d}": _resnet(d) for d in (8, 14, 20, 32, 44, 56, 110)},
          **{f"resnet{d}x4": _resnet(d, 32, (64, 128, 256)) for d in (8, 32)}}
