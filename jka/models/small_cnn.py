"""A small CNN for tiny inputs such as the 8x8 scikit-learn digits.

conv3x3(32w)-BN-ReLU -> conv3x3(64w)-BN-ReLU -> max-pool 2x2 -> conv3x3(128w)-BN-ReLU ->
global average pool -> linear. ``width`` scales the channels (``width=0.5`` makes a student).
Flax names: ``conv1``/``bn1``, ``conv2``/``bn2``, ``conv3``/``bn3``, ``linear``.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jka.models.layers import BatchNorm

BASE_CHANNELS = (32, 64, 128)


def small_cnn_channels(width: float) -> tuple[int, ...]:
    return tuple(max(1, int(round(c * width))) for c in BASE_CHANNELS)


class SmallCNN(nn.Module):
    num_classes: int
    width: float = 1.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        feats = {}
        for i, c in enumerate(small_cnn_channels(self.width)):
            x = nn.Conv(c, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, dtype=self.dtype, name=f"conv{i + 1}")(x)
            x = nn.relu(BatchNorm(use_running_average=not train, dtype=self.dtype, name=f"bn{i + 1}")(x))
            feats[f"block{i + 1}"] = x
            if i == 1:
                x = nn.max_pool(x, (2, 2), (2, 2))
        pooled = jnp.mean(x, axis=(1, 2))
        feats["pooled"] = pooled
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="linear")(pooled)
        return logits.astype(jnp.float32), feats


def small_cnn(num_classes, dtype=jnp.float32, **kw):
    return SmallCNN(num_classes, dtype=dtype, **kw)
