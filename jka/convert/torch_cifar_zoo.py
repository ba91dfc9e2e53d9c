"""PyTorch twins of the CIFAR-100 KD benchmark's networks (RepDistiller / mdistiller ``models/``:
the ``cifar_teachers.tar`` teachers and their students), with the benchmark's state-dict key names, so
its checkpoints load here strictly, and the ResNet pieces :mod:`jka.convert.torch_models` shares.
``forward`` returns ``(logits, features)`` with the feature names of jka's Flax models (NCHW). The
``resnetv2.py`` ResNet18/34/50 and the VGGs are :mod:`jka.convert.torch_models`' ``CifarResNet`` and
``VGG``; the WRNs are its ``WideResNet``.

Only import this module when torch is installed.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from jka.models.mobilenetv2 import ZOO_FEATURES, ZOO_SETTINGS


def pool(x):
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def conv(cin, cout, k, stride=1, groups=1):
    """A bias-free ``k``×``k`` conv with PyTorch's symmetric padding ``(k − 1) // 2``."""
    return nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)


def staged(net, x, n, head, last=None):
    """``(logits, features)`` of ``net`` from its stem's output ``x``: ``layer1..n``, ``last`` (if
    any), global average pool, ``head``."""
    feats = {"stem": x}
    for s in range(1, n + 1):
        x = feats[f"layer{s}"] = getattr(net, f"layer{s}")(x)
    feats["pooled"] = pool(x if last is None else last(x))
    return head(feats["pooled"]), feats


# ---------------------------------------------------------------- ResNets


class BasicBlock(nn.Module):
    """conv3×3 (stride)-BN-ReLU-conv3×3-BN plus the shortcut, ReLU. The shortcut is a 1×1 conv + BN
    where the shape changes, under the name ``shortcut`` (``downsample`` in torchvision's and the
    benchmark's ``resnet.py``, ``shortcut`` in its ``resnetv2.py``)."""
    expansion = 1

    def __init__(self, cin, planes, stride=1, shortcut="downsample"):
        super().__init__()
        self.conv1, self.bn1 = conv(cin, planes, 3, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv(planes, planes, 3), nn.BatchNorm2d(planes)
        _add_shortcut(self, shortcut, cin, planes, stride)

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + getattr(self, self.shortcut_name)(x))


class Bottleneck(nn.Module):
    """1x1, 3x3 (stride), 1x1 to 4·planes, each with BN, plus the shortcut (as :class:`BasicBlock`), ReLU."""
    expansion = 4

    def __init__(self, cin, planes, stride=1, shortcut="downsample"):
        super().__init__()
        self.conv1, self.bn1 = conv(cin, planes, 1), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv(planes, planes, 3, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = conv(planes, planes * 4, 1), nn.BatchNorm2d(planes * 4)
        _add_shortcut(self, shortcut, cin, planes * 4, stride)

    def forward(self, x):
        out = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.relu(self.bn3(self.conv3(out)) + getattr(self, self.shortcut_name)(x))


def _add_shortcut(block, name, cin, cout, stride):
    block.shortcut_name = name
    identity = stride == 1 and cin == cout
    setattr(block, name, nn.Identity() if identity else nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout)))


class ResNet(nn.Module):
    """torchvision's layout: a 7x7 stride-2 stem ``conv1``/``bn1`` and ``maxpool`` (``imagenet``; else a
    3x3 stem), stages ``layer{s}`` of ``widths`` (every stage after the first starts at stride 2),
    global pool and the linear ``head`` (its attribute name)."""

    def __init__(self, block, num_blocks, num_classes=1000, in_channels=3, widths=(64, 128, 256, 512), stem=64,
                 imagenet=True, shortcut="downsample", head="fc"):
        super().__init__()
        self.conv1 = conv(in_channels, stem, 7, 2) if imagenet else conv(in_channels, stem, 3)
        self.bn1 = nn.BatchNorm2d(stem)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if imagenet else nn.Identity()
        cin = stem
        for s, (planes, n) in enumerate(zip(widths, num_blocks), 1):
            blocks = []
            for i in range(n):
                blocks.append(block(cin, planes, 2 if s > 1 and i == 0 else 1, shortcut))
                cin = planes * block.expansion
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
        self.head_name, self.stages = head, len(widths)
        setattr(self, head, nn.Linear(cin, num_classes))

    def forward(self, x):
        return staged(self, self.maxpool(F.relu(self.bn1(self.conv1(x)))), self.stages, getattr(self, self.head_name))


class ZooResNet(ResNet):
    """``models/resnet.py`` (resnet8..110, resnet8x4, resnet32x4): a 3x3 stem of ``filters[0]``
    channels, three stages of (depth − 2) / 6 blocks with ``filters[1:]`` channels, ``fc``."""

    def __init__(self, depth, filters, num_classes=100, in_channels=3):
        super().__init__(BasicBlock, [(depth - 2) // 6] * 3, num_classes, in_channels, filters[1:], filters[0],
                         imagenet=False)


# ---------------------------------------------------------------- mobile_half (MobileNetV2 of the benchmark)


def _conv_bn_relu(cin, cout, k, stride=1, groups=1):
    return [conv(cin, cout, k, stride, groups), nn.BatchNorm2d(cout), nn.ReLU()]


class MobileBlock(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        self.residual = stride == 1 and cin == cout
        self.conv = nn.Sequential(*_conv_bn_relu(cin, hidden, 1), *_conv_bn_relu(hidden, hidden, 3, stride, hidden),
                                  conv(hidden, cout, 1), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileHalf(nn.Module):
    """``models/mobilenetv2.py`` (``mobile_half``: width 0.5, T 6): ``conv1``, ``blocks.k.i.conv.j``,
    ``conv2``, ``classifier.0``; features after blocks 1, 2, 4 and 6."""

    def __init__(self, num_classes=100, width=0.5, expansion=6):
        super().__init__()
        cin = int(32 * width)
        self.conv1 = nn.Sequential(*_conv_bn_relu(3, cin, 3, 2))
        self.blocks = nn.ModuleList()
        for t, c, n, s in ZOO_SETTINGS:
            cout = int(c * width)
            self.blocks.append(nn.Sequential(*[MobileBlock(cin if i == 0 else cout, cout, s if i == 0 else 1,
                                                           t or expansion) for i in range(n)]))
            cin = cout
        last = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = nn.Sequential(*_conv_bn_relu(cin, last, 1))
        self.classifier = nn.Sequential(nn.Linear(last, num_classes))

    def forward(self, x):
        x = self.conv1(x)
        feats = {"stem": x}
        for k, block in enumerate(self.blocks):
            x = block(x)
            if k in ZOO_FEATURES:
                feats[ZOO_FEATURES[k]] = x
        feats["pooled"] = pool(self.conv2(x))
        return self.classifier(feats["pooled"]), feats


# ---------------------------------------------------------------- ShuffleV1, ShuffleV2


def shuffle(x, groups):
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleV1Block(nn.Module):
    def __init__(self, cin, cout, stride, groups):
        super().__init__()
        mid, self.stride = cout // 4, stride
        self.g = 1 if cin == 24 else groups
        self.conv1, self.bn1 = conv(cin, mid, 1, groups=self.g), nn.BatchNorm2d(mid)
        self.conv2, self.bn2 = conv(mid, mid, 3, stride, mid), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = conv(mid, cout, 1, groups=groups), nn.BatchNorm2d(cout)

    def forward(self, x):
        out = shuffle(F.relu(self.bn1(self.conv1(x))), self.g)
        out = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(out)))))
        if self.stride == 2:
            return F.relu(torch.cat([out, F.avg_pool2d(x, 3, 2, 1)], 1))
        return F.relu(out + x)


class ShuffleNetV1(nn.Module):
    """``models/ShuffleNetv1.py`` (``ShuffleV1``): ``conv1``/``bn1``, ``layer{s}.{i}``, ``linear``."""

    def __init__(self, num_classes=100, out_planes=(240, 480, 960), num_blocks=(4, 8, 4), groups=3):
        super().__init__()
        self.conv1, self.bn1 = conv(3, 24, 1), nn.BatchNorm2d(24)
        cin = 24
        for s, (planes, n) in enumerate(zip(out_planes, num_blocks), 1):
            blocks = [ShuffleV1Block(cin, planes - cin, 2, groups)]
            blocks += [ShuffleV1Block(planes, planes, 1, groups) for _ in range(1, n)]
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
            cin = planes
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
        return staged(self, F.relu(self.bn1(self.conv1(x))), 3, self.linear)


class ShuffleV2Block(nn.Module):
    def __init__(self, cin):
        super().__init__()
        c = cin // 2
        self.conv1, self.bn1 = conv(c, c, 1), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = conv(c, c, 3, groups=c), nn.BatchNorm2d(c)
        self.conv3, self.bn3 = conv(c, c, 1), nn.BatchNorm2d(c)

    def forward(self, x):
        kept, out = x.chunk(2, dim=1)
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(out)))))
        return shuffle(torch.cat([kept, F.relu(self.bn3(self.conv3(out)))], 1), 2)


class ShuffleV2Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        mid = cout // 2
        self.conv1, self.bn1 = conv(cin, cin, 3, 2, cin), nn.BatchNorm2d(cin)
        self.conv2, self.bn2 = conv(cin, mid, 1), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = conv(cin, mid, 1), nn.BatchNorm2d(mid)
        self.conv4, self.bn4 = conv(mid, mid, 3, 2, mid), nn.BatchNorm2d(mid)
        self.conv5, self.bn5 = conv(mid, mid, 1), nn.BatchNorm2d(mid)

    def forward(self, x):
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x)))))
        return shuffle(torch.cat([left, F.relu(self.bn5(self.conv5(right)))], 1), 2)


class ShuffleNetV2(nn.Module):
    """``models/ShuffleNetv2.py`` (``ShuffleV2``, net size 1): ``conv1``/``bn1``, ``layer{s}.0`` the
    down-sampling unit, ``layer{s}.{i}``, ``conv2``/``bn2``, ``linear``."""

    def __init__(self, num_classes=100, out_planes=(116, 232, 464, 1024), num_blocks=(3, 7, 3)):
        super().__init__()
        self.conv1, self.bn1 = conv(3, 24, 1), nn.BatchNorm2d(24)
        cin = 24
        for s, (planes, n) in enumerate(zip(out_planes, num_blocks), 1):
            setattr(self, f"layer{s}", nn.Sequential(ShuffleV2Down(cin, planes), *[ShuffleV2Block(planes) for _ in range(n)]))
            cin = planes
        self.conv2, self.bn2 = conv(cin, out_planes[3], 1), nn.BatchNorm2d(out_planes[3])
        self.linear = nn.Linear(out_planes[3], num_classes)

    def forward(self, x):
        return staged(self, F.relu(self.bn1(self.conv1(x))), 3, self.linear, lambda y: F.relu(self.bn2(self.conv2(y))))


TWINS = {
    **{f"resnet{d}": partial(ZooResNet, d, (16, 16, 32, 64)) for d in (8, 14, 20, 32, 44, 56, 110)},
    **{f"resnet{d}x4": partial(ZooResNet, d, (32, 64, 128, 256)) for d in (8, 32)},
    "mobile_half": MobileHalf,
    "shufflev1": ShuffleNetV1,
    "shufflev2": ShuffleNetV2,
}
