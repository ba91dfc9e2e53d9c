"""ShuffleNet V1 and V2 of the CIFAR KD benchmark (RepDistiller / mdistiller ``ShuffleNetv1.py``,
``ShuffleNetv2.py``: ``ShuffleV1``, ``ShuffleV2``), CIFAR variants with a 1x1 stem of 24 channels and
no max-pool.

* ``shufflev1`` (groups 3, stages 240/480/960 of 4/8/4 units): a unit is a grouped 1x1 conv to a
  quarter of its width (ungrouped from the 24-channel stem), a channel shuffle, a depthwise 3x3, a
  grouped 1x1; stride-2 units concatenate a 3x3 average pool (padding counted) of their input.
* ``shufflev2`` (stages 116/232/464 of 1 down-sampling + 3/7/3 units, a 1x1 conv to 1024): a unit
  passes half of its channels through and transforms the other half (1x1, depthwise 3x3, 1x1); a
  down-sampling unit transforms the whole input in two branches; both end in a shuffle of 2 groups.

Both pool the last map globally (the reference's ``avg_pool2d(·, 4)`` on the 4x4 map of a 32 px
input) into ``linear``. Flax names mirror the PyTorch ones: ``conv1``/``bn1``, ``layer{s}_{i}/conv{j}``,
``bn{j}``, (V2) ``conv2``/``bn2``, ``linear``. Features: ``stem``, ``layer1..3``, ``pooled``.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jka.models.layers import BatchNorm, classify
from jka.models.mobilenetv2 import conv


def channel_shuffle(x, groups: int):
    """NHWC channel shuffle: channel ``g · (C/groups) + j`` moves to ``j · groups + g``."""
    n, h, w, c = x.shape
    return x.reshape(n, h, w, groups, c // groups).swapaxes(-1, -2).reshape(n, h, w, c)


def _conv_bn(module: nn.Module, x, j, features, kernel, stride, groups, train):
    """``bn{j}(conv{j}(x))`` created inside ``module`` (a compact method)."""
    y = conv(features, kernel, stride, groups, module.dtype, f"conv{j}")(x)
    return BatchNorm(use_running_average=not train, dtype=module.dtype, name=f"bn{j}")(y)


class ShuffleV1Unit(nn.Module):
    out_planes: int  # this unit's own output (the pooled input is concatenated after it at stride 2)
    stride: int
    groups: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        mid = self.out_planes // 4
        g = 1 if x.shape[-1] == 24 else self.groups  # the first unit's 1x1 reads the stem ungrouped
        out = channel_shuffle(nn.relu(_conv_bn(self, x, 1, mid, 1, 1, g, train)), g)
        out = nn.relu(_conv_bn(self, out, 2, mid, 3, self.stride, mid, train))
        out = _conv_bn(self, out, 3, self.out_planes, 1, 1, self.groups, train)
        if self.stride == 2:
            pooled = nn.avg_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)), count_include_pad=True)
            return nn.relu(jnp.concatenate([out, pooled], axis=-1))
        return nn.relu(out + x)


class ShuffleV2Unit(nn.Module):
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        c = x.shape[-1] // 2
        kept, out = x[..., :c], x[..., c:]
        out = nn.relu(_conv_bn(self, out, 1, c, 1, 1, 1, train))
        out = _conv_bn(self, out, 2, c, 3, 1, c, train)
        out = nn.relu(_conv_bn(self, out, 3, c, 1, 1, 1, train))
        return channel_shuffle(jnp.concatenate([kept, out], axis=-1), 2)


class ShuffleV2Down(nn.Module):
    out_planes: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        c_in, mid = x.shape[-1], self.out_planes // 2
        left = _conv_bn(self, x, 1, c_in, 3, 2, c_in, train)
        left = nn.relu(_conv_bn(self, left, 2, mid, 1, 1, 1, train))
        right = nn.relu(_conv_bn(self, x, 3, mid, 1, 1, 1, train))
        right = _conv_bn(self, right, 4, mid, 3, 2, mid, train)
        right = nn.relu(_conv_bn(self, right, 5, mid, 1, 1, 1, train))
        return channel_shuffle(jnp.concatenate([left, right], axis=-1), 2)


def _stem_and_head(module: nn.Module, x, stages, train):
    """The shared frame: 1x1 stem to 24 channels + BN + ReLU, the stages (callables of (x, s)), then
    the features dict; the caller adds its head."""
    x = nn.relu(_conv_bn(module, x, 1, 24, 1, 1, 1, train))
    feats = {"stem": x}
    for s, stage in enumerate(stages, 1):
        x = feats[f"layer{s}"] = stage(x, s)
    return x, feats


class ShuffleNetV1(nn.Module):
    num_classes: int
    out_planes: Sequence[int] = (240, 480, 960)
    num_blocks: Sequence[int] = (4, 8, 4)
    groups: int = 3
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        def stage(h, s):
            for i in range(self.num_blocks[s - 1]):
                own = self.out_planes[s - 1] - (h.shape[-1] if i == 0 else 0)
                h = ShuffleV1Unit(own, 2 if i == 0 else 1, self.groups, self.dtype, name=f"layer{s}_{i}")(h, train)
            return h

        x, feats = _stem_and_head(self, x, [stage] * 3, train)
        return classify(self, x, feats, "linear")


class ShuffleNetV2(nn.Module):
    num_classes: int
    out_planes: Sequence[int] = (116, 232, 464, 1024)
    num_blocks: Sequence[int] = (3, 7, 3)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        def stage(h, s):
            h = ShuffleV2Down(self.out_planes[s - 1], self.dtype, name=f"layer{s}_0")(h, train)
            for i in range(1, self.num_blocks[s - 1] + 1):
                h = ShuffleV2Unit(self.dtype, name=f"layer{s}_{i}")(h, train)
            return h

        x, feats = _stem_and_head(self, x, [stage] * 3, train)
        x = nn.relu(_conv_bn(self, x, 2, self.out_planes[3], 1, 1, 1, train))
        return classify(self, x, feats, "linear")
