"""VGG16 without BN in the features (the NetGraft teacher) and the thinner ``vgg16-graft`` student.

NetGraft (docs/methods.md). Both networks are five conv blocks (2, 2, 3, 3, 3 convs of 3×3, pad 1, bias, each
followed by ReLU) and a classifier ``Linear(h) → BatchNorm1d → Linear(C)`` on the globally pooled
map. A 2×2 max-pool follows every block while the map is at least 2 px tall, so 32 px inputs
(CIFAR) end at 1×1 after block 5 and 16 px inputs (digits resized) after block 4.

* Teacher widths: 64, 128, 256, 512, 512 (× ``width``).
* Student (``vgg16_graft``): blocks 4–5 (indices 3, 4) are thinner: 256 channels (× ``width``).
  Every student block ``b`` has two 1×1 adapters (no bias): ``adapt_in{b}`` teacher width →
  student width of its input (absent for block 0, whose input is the image) and ``adapt_out{b}``
  student width → teacher width of its output. In the stand-alone student, consecutive blocks are
  joined by ``adapt_out{b}`` then ``adapt_in{b+1}`` (two linear maps, exactly what grafting
  trained), and the classifier takes the teacher-width vector after ``adapt_out4``.

``width`` scales every channel count (``width=0.25`` gives a digits-sized pair). The block-level
methods (``blocks``, ``head``, ``block``, ``adapt_in``, ``adapt_out``) are what grafting composes.
Flax names: ``convs_{b}_{j}``, ``classifier_fc1``, ``classifier_bn``, ``classifier_fc2``,
``adapters_in_{b}`` (b ≥ 1), ``adapters_out_{b}``.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jka.models.layers import BatchNorm

NUM_CONVS = (2, 2, 3, 3, 3)
TEACHER_WIDTHS = (64, 128, 256, 512, 512)
STUDENT_WIDTHS = (64, 128, 256, 256, 256)
CLASSIFIER_HIDDEN = 512
PAD1 = ((1, 1), (1, 1))


def scaled(widths: Sequence[int], width: float) -> tuple[int, ...]:
    return tuple(max(1, int(round(c * width))) for c in widths)


def _pool(x):
    """2×2 max-pool while the map is at least 2 px tall."""
    return nn.max_pool(x, (2, 2), (2, 2)) if x.shape[1] >= 2 else x


class _VGGBody(nn.Module):
    """Shared pieces: conv blocks of ``widths`` and the Linear-BN1d-Linear classifier."""

    num_classes: int
    widths: Sequence[int] = TEACHER_WIDTHS
    hidden: int = CLASSIFIER_HIDDEN
    dtype: Any = jnp.float32

    def setup(self):
        self.convs = [[nn.Conv(self.widths[b], (3, 3), padding=PAD1, dtype=self.dtype)
                       for j in range(NUM_CONVS[b])] for b in range(5)]
        self.classifier_fc1 = nn.Dense(self.hidden, dtype=self.dtype)
        self.classifier_bn = BatchNorm(dtype=self.dtype)
        self.classifier_fc2 = nn.Dense(self.num_classes, dtype=self.dtype)

    def block(self, x, b: int):
        """Conv block ``b`` (convs + ReLU) followed by its max-pool."""
        for conv in self.convs[b]:
            x = nn.relu(conv(x))
        return _pool(x)

    def head(self, x, train: bool = False):
        """Global average pool and classifier → float32 logits."""
        pooled = jnp.mean(x, axis=(1, 2))
        h = self.classifier_fc1(pooled)
        h = self.classifier_bn(h, use_running_average=not train)
        return self.classifier_fc2(h).astype(jnp.float32)


class VGG16Teacher(_VGGBody):
    """VGG16 without BN in the features (classifier Linear-BN1d-Linear)."""

    def blocks(self, x, start: int, stop: int):
        """Teacher blocks ``start`` .. ``stop - 1`` applied to ``x``."""
        for b in range(start, stop):
            x = self.block(x, b)
        return x

    def __call__(self, x, train: bool = False):
        feats = {}
        for b in range(5):
            x = self.block(x, b)
            feats[f"block{b + 1}"] = x
        feats["pooled"] = jnp.mean(x, axis=(1, 2))
        return self.head(x, train), feats


class VGG16Graft(_VGGBody):
    """The NetGraft student: thinner blocks 4–5 plus the 1×1 adapters to and from teacher widths."""

    teacher_widths: Sequence[int] = TEACHER_WIDTHS

    def setup(self):
        super().setup()
        self.adapters_in = [None] + [nn.Conv(self.widths[b - 1], (1, 1), use_bias=False, dtype=self.dtype) for b in range(1, 5)]
        self.adapters_out = [nn.Conv(self.teacher_widths[b], (1, 1), use_bias=False, dtype=self.dtype) for b in range(5)]

    def adapt_in(self, x, b: int):
        """Teacher-width input of block ``b`` → the student's width (identity for block 0)."""
        return x if b == 0 else self.adapters_in[b](x)

    def adapt_out(self, x, b: int):
        """Student-width output of block ``b`` → the teacher's width."""
        return self.adapters_out[b](x)

    def chain(self, x, start: int, stop: int):
        """Student blocks ``start`` .. ``stop - 1`` with their adapters: teacher width in and out."""
        for b in range(start, stop):
            x = self.adapt_out(self.block(self.adapt_in(x, b), b), b)
        return x

    def __call__(self, x, train: bool = False):
        feats = {}
        for b in range(5):
            x = self.adapt_out(self.block(self.adapt_in(x, b), b), b)
            feats[f"block{b + 1}"] = x
        feats["pooled"] = jnp.mean(x, axis=(1, 2))
        return self.head(x, train), feats


def vgg16_teacher(num_classes, dtype=jnp.float32, width: float = 1.0, **kw):
    return VGG16Teacher(num_classes, scaled(TEACHER_WIDTHS, width), scaled((CLASSIFIER_HIDDEN,), width)[0],
                        dtype=dtype, **kw)


def vgg16_graft(num_classes, dtype=jnp.float32, width: float = 1.0, **kw):
    return VGG16Graft(num_classes, scaled(STUDENT_WIDTHS, width), scaled((CLASSIFIER_HIDDEN,), width)[0],
                      dtype=dtype, teacher_widths=scaled(TEACHER_WIDTHS, width), **kw)


# Zoo entries (name → factory with the zoo signature ``(num_classes, dtype=..., **kwargs)``).
MODELS = {"vgg16_teacher": vgg16_teacher, "vgg16_graft": vgg16_graft}
