"""SegNet-VGG16-BN encoder/decoder with a dense head, and the branchy multi-task student
(task branching, docs/methods.md).

Encoder: the 13 conv layers of VGG16 in five blocks (64,64 | 128,128 | 256×3 | 512×3 | 512×3),
each conv 3×3 (explicit padding 1) + BN + ReLU, each block ended by a 2×2 max-pool that keeps its
argmax indices. Decoder: five blocks mirroring the encoder; each first *unpools* with the indices
of the matching encoder pool (the value goes back to the position it came from, zeros elsewhere)
and then runs its convs (512,512,512 | 512,512,256 | 256,256,128 | 128,64 | 64), each conv + BN +
ReLU. The head is a 3×3 conv to ``num_classes`` channels (segmentation logits, or 1 channel for
depth). ``width`` multiplies every channel count (default 1.0 is the real SegNet) so an embedded
CPU run stays cheap. Inputs need H and W divisible by 32 (five pools).

The pool indices are stored as the position (0..3) inside each 2×2 window, which is all unpooling
needs; ties pick the first maximum in row-major order (as PyTorch does).

``BranchySegNet`` (the student of "Student Becoming the Master") shares one encoder and one
decoder; every task owns a full copy of the decoder blocks plus its head, and one channel-attention
adaptor per candidate branch point (1×1 conv C→max(C/4,16), ReLU, 1×1 conv →C, sigmoid, on the
globally average-pooled map, multiplied into the map). Candidate branch points are ``0`` (after
the encoder) and ``k`` (after shared decoder block ``k``, k = 1..5). A task branching at ``b``
takes the shared map at ``b``, applies its adaptor ``b`` and then its own decoder blocks
``b+1..5`` and head. Its copies of blocks ``1..b`` are unused for that choice (they exist so the
branch point can be drawn at random inside one compiled step, task branching's phase 1).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jka.errors import ConfigError
from jka.models.layers import BatchNorm

ENCODER = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
DECODER = ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64,))
NUM_POINTS = len(DECODER) + 1  # after the encoder, after each decoder block


def scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def max_pool_with_indices(x):
    """2×2 stride-2 max-pool; returns (pooled, index 0..3 of the max inside each window)."""
    b, h, w, c = x.shape
    win = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(b, h // 2, w // 2, c, 4)
    idx = jnp.argmax(win, axis=-1)
    return jnp.max(win, axis=-1), idx


def max_unpool(x, idx):
    """Inverse of :func:`max_pool_with_indices`: each value back to its argmax, zeros elsewhere."""
    b, h, w, c = x.shape
    spread = jax.nn.one_hot(idx, 4, dtype=x.dtype) * x[..., None]          # (b, h, w, c, 4)
    return spread.reshape(b, h, w, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(b, 2 * h, 2 * w, c)


class ConvBNReLU(nn.Module):
    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype, name="conv")(x)
        x = BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn")(x)
        return nn.relu(x)


class EncoderBlock(nn.Module):
    widths: Sequence[int]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        for j, c in enumerate(self.widths):
            x = ConvBNReLU(c, self.dtype, name=f"conv{j}")(x, train)
        return max_pool_with_indices(x)


class DecoderBlock(nn.Module):
    widths: Sequence[int]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, idx, train: bool):
        x = max_unpool(x, idx)
        for j, c in enumerate(self.widths):
            x = ConvBNReLU(c, self.dtype, name=f"conv{j}")(x, train)
        return x


class ChannelAttention(nn.Module):
    """``F · σ(W2 ReLU(W1 GAP(F)))`` with 1×1 convs C→max(C/4,16)→C (task branching's adaptor)."""

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        g = jnp.mean(x, axis=(1, 2), keepdims=True)
        a = nn.Conv(max(c // 4, 16), (1, 1), dtype=self.dtype, name="squeeze")(g)
        a = nn.Conv(c, (1, 1), dtype=self.dtype, name="excite")(nn.relu(a))
        return x * nn.sigmoid(a)


def _check_size(x):
    if x.shape[1] % 32 or x.shape[2] % 32:
        raise ConfigError(f"SegNet needs image height and width divisible by 32 (five 2×2 pools); "
                          f"got {x.shape[1]}×{x.shape[2]}: resize or crop the data")


class Encoder(nn.Module):
    width: float = 1.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        _check_size(x)
        indices = []
        for b, widths in enumerate(ENCODER):
            x, idx = EncoderBlock([scaled(c, self.width) for c in widths], self.dtype, name=f"enc{b + 1}")(x, train)
            indices.append(idx)
        return x, indices


def decoder_blocks(width, dtype, prefix=""):
    return [DecoderBlock([scaled(c, width) for c in widths], dtype, name=f"{prefix}dec{k + 1}")
            for k, widths in enumerate(DECODER)]


class SegNet(nn.Module):
    """``(out, features)``: ``out`` is (B, H, W, num_classes) float32; features: ``encoder``,
    ``dec1..dec5`` and ``pooled`` (the global average of the encoder output)."""

    num_classes: int
    width: float = 1.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x, indices = Encoder(self.width, self.dtype, name="encoder")(x, train)
        feats = {"encoder": x, "pooled": jnp.mean(x, axis=(1, 2))}
        for k, block in enumerate(decoder_blocks(self.width, self.dtype)):
            x = block(x, indices[len(DECODER) - 1 - k], train)
            feats[f"dec{k + 1}"] = x
        out = nn.Conv(self.num_classes, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype, name="head")(x)
        return out.astype(jnp.float32), feats


class TaskBranch(nn.Module):
    """One task's private part: an adaptor per candidate point, decoder blocks 1..5, the head."""

    out_channels: int
    width: float = 1.0
    dtype: Any = jnp.float32

    def setup(self):
        self.adaptors = [ChannelAttention(self.dtype, name=f"adaptor{b}") for b in range(NUM_POINTS)]
        self.blocks = decoder_blocks(self.width, self.dtype)
        self.head = nn.Conv(self.out_channels, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype)

    def __call__(self, shared, indices, point: int, train: bool):
        """``shared``: the shared map at branch point ``point`` (a Python int)."""
        x = self.adaptors[point](shared)
        for k in range(point, len(DECODER)):
            x = self.blocks[k](x, indices[len(DECODER) - 1 - k], train)
        return self.head(x).astype(jnp.float32)

    def init_all(self, shared_maps, indices, train: bool):
        """Touches every adaptor and block (for ``init``)."""
        return [self(m, indices, p, train) for p, m in enumerate(shared_maps)]


class BranchySegNet(nn.Module):
    """The multi-task student. ``task_channels[t]`` is task t's output width (C or 1).

    ``__call__(x, train, points)`` with a static tuple ``points`` (one branch point per task;
    default ``branch_points``) returns ``(outputs, features)``: a tuple of per-task outputs.
    ``shared(x, train)`` and ``task(t, point, maps, indices, train)`` are the two halves the
    algorithm uses to draw branch points inside one compiled step.
    """

    task_channels: Sequence[int]
    width: float = 1.0
    branch_points: Sequence[int] | None = None
    dtype: Any = jnp.float32

    def setup(self):
        self.encoder = Encoder(self.width, self.dtype)
        self.decoder = decoder_blocks(self.width, self.dtype, prefix="shared_")
        self.tasks = [TaskBranch(c, self.width, self.dtype, name=f"task{t}")
                      for t, c in enumerate(self.task_channels)]

    def shared(self, x, train: bool = False):
        """Shared maps at every candidate branch point (0 = encoder output) and the pool indices."""
        x, indices = self.encoder(x, train)
        maps = [x]
        for k, block in enumerate(self.decoder):
            x = block(x, indices[len(DECODER) - 1 - k], train)
            maps.append(x)
        return maps, indices

    def task(self, t: int, point: int, maps, indices, train: bool = False):
        return self.tasks[t](maps[point], indices, point, train)

    def init_all(self, x, train: bool = False):
        maps, indices = self.shared(x, train)
        return [br.init_all(maps, indices, train) for br in self.tasks]

    def __call__(self, x, train: bool = False, points: Sequence[int] | None = None):
        points = tuple(points if points is not None else (self.branch_points or ()))
        if len(points) != len(self.task_channels):
            raise ConfigError(f"the branchy student needs one branch point per task ({len(self.task_channels)}); "
                              f"got {list(points)}")
        maps, indices = self.shared(x, train)
        outs = tuple(self.task(t, p, maps, indices, train) for t, p in enumerate(points))
        return outs, {"encoder": maps[0], "pooled": jnp.mean(maps[0], axis=(1, 2))}


def branchy_segnet(num_classes, dtype=jnp.float32, width: float = 1.0, task_channels=None,
                   branch_points=None, **kw):
    """The branchy student; ``num_classes`` is the sum of the tasks' output channels."""
    if task_channels is None or sum(task_channels) != num_classes:
        raise ConfigError("branchy_segnet needs task_channels (one output width per task) summing to num_classes")
    return BranchySegNet(tuple(int(c) for c in task_channels), width=width,
                         branch_points=None if branch_points is None else tuple(int(p) for p in branch_points),
                         dtype=dtype, **kw)
