"""A small CNN for tiny inputs such as the 8x8 scikit-learn digits.

conv3x3(32w)-BN-ReLU -> conv3x3(64w)-BN-ReLU -> max-pool 2x2 -> conv3x3(128w)-BN-ReLU ->
global average pool -> linear. ``width`` scales the channels (``width=0.5`` makes a student).
Flax names: ``conv1``/``bn1``, ``conv2``/``bn2``, ``conv3``/``bn3``, ``linear``.

The network is three blocks (block 2 ends with the max-pool) and a head; ``start`` runs it from the
input of block ``start`` (4: the head alone), which is how data-free amalgamation reads a teacher
from an intermediate feature.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jka.models.layers import BatchNorm, classify

BASE_CHANNELS = (32, 64, 128)
NUM_BLOCKS = 3
POOL_AFTER = 2  # block 2 ends with a 2×2 max-pool


def small_cnn_channels(width: float) -> tuple[int, ...]:
    return tuple(max(1, int(round(c * width))) for c in BASE_CHANNELS)


def small_cnn_block(x, channels: int, block: int, train: bool, dtype=jnp.float32, conv="conv", bn="bn"):
    """Block ``block`` (1-based) inside a compact module: conv3×3 → BN → ReLU (→ max-pool after
    block 2). Returns (output, the feature before the pool)."""
    x = nn.Conv(channels, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, dtype=dtype, name=conv)(x)
    x = nn.relu(BatchNorm(use_running_average=not train, dtype=dtype, name=bn)(x))
    return (nn.max_pool(x, (2, 2), (2, 2)) if block == POOL_AFTER else x), x


class SmallCNN(nn.Module):
    num_classes: int
    width: float = 1.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False, start: int = 1):
        feats = {}
        for b, c in enumerate(small_cnn_channels(self.width)[start - 1:], start):
            x, feats[f"block{b}"] = small_cnn_block(x, c, b, train, self.dtype, f"conv{b}", f"bn{b}")
        return classify(self, x, feats, "linear")
