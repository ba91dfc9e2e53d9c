"""CIFAR VGG with BN of CRD / RepDistiller (``models/vgg.py``): vgg8/11/13/16/19 (configs S/A/B/D/E).

Each block is a PyTorch ``nn.Sequential`` of conv(3x3, pad 1, bias) / BN / ReLU with its last
ReLU stripped; the ReLU is applied after the block. Max-pool 2x2 after blocks 1-3; after block 4
only when the input is 64 px tall (exactly as the original); adaptive average pool after block 5.
Flax names mirror the PyTorch sequential indices: ``block{b}_{j}`` (conv at j=3m, BN at j=3m+1,
b = 0..4) and ``classifier``.

Features: ``stem`` (block 0's output, the reference's first feature, which its stage terms skip),
``block1..4`` (after each later block's ReLU, before its pool) and ``pooled``.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jka.models.layers import BatchNorm, classify

CFGS = {
    "S": ((64,), (128,), (256,), (512,), (512,)),
    "A": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "B": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "D": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "E": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


class VGG(nn.Module):
    num_classes: int
    cfg: Sequence[Sequence[int]] = CFGS["S"]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = x.shape[1]
        feats = {}
        for b, widths in enumerate(self.cfg):
            for m, v in enumerate(widths):
                if m > 0:
                    x = nn.relu(x)
                x = nn.Conv(v, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype, name=f"block{b}_{3 * m}")(x)
                x = BatchNorm(use_running_average=not train, dtype=self.dtype, name=f"block{b}_{3 * m + 1}")(x)
            x = nn.relu(x)
            feats[f"block{b}" if b else "stem"] = x
            if b < 3 or (b == 3 and h == 64):
                x = nn.max_pool(x, (2, 2), (2, 2))
        return classify(self, x, feats, "classifier")


def factory(key):
    def make(num_classes, dtype=jnp.float32, **kw):
        return VGG(num_classes, CFGS[key], dtype=dtype, **kw)
    return make
