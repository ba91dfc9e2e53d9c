"""PyTorch twins of the CIFAR-100 KD benchmark's networks (RepDistiller / mdistiller ``models/``:
the ``cifar_teachers.tar`` teachers and their students), with the benchmark's state-dict key names, so
its checkpoints load here strictly. ``forward`` returns ``(logits, features)`` with the feature names
of jka's Flax models (NCHW). The ``resnetv2.py`` ResNet18/34/50 and the VGGs are
:mod:`jka.convert.torch_models`' ``CifarResNet`` and ``VGG``; the WRNs are its ``WideResNet``.

Only import this module when torch is installed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pool(x):
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def _conv(cin, cout, k, stride=1, groups=1):
    return nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)


# ---------------------------------------------------------------- resnet8..110, resnet8x4, resnet32x4


class ZooBasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the shortcut (``downsample`` 1x1 conv + BN when the shape changes), ReLU."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, planes, 3, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv(planes, planes, 3), nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(_conv(cin, planes, 1, stride), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ZooResNet(nn.Module):
    """``models/resnet.py``: a 3x3 stem of ``filters[0]`` channels, three stages of (depth − 2) / 6
    blocks with ``filters[1:]`` channels (the second and third at stride 2), global pool, ``fc``."""

    def __init__(self, depth, filters, num_classes=100):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1, self.bn1 = _conv(3, filters[0], 3), nn.BatchNorm2d(filters[0])
        cin = filters[0]
        for s, planes in enumerate(filters[1:], 1):
            blocks = [ZooBasicBlock(cin if i == 0 else planes, planes, 2 if s > 1 and i == 0 else 1) for i in range(n)]
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
            cin = planes
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        feats = {"stem": x}
        for s in range(1, 4):
            x = feats[f"layer{s}"] = getattr(self, f"layer{s}")(x)
        feats["pooled"] = _pool(x)
        return self.fc(feats["pooled"]), feats


# ---------------------------------------------------------------- mobile_half (MobileNetV2 of the benchmark)

MOBILE_SETTINGS = [(1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2), (None, 64, 4, 2), (None, 96, 3, 1),
                   (None, 160, 3, 2), (None, 320, 1, 1)]


def _conv_bn_relu(cin, cout, k, stride=1, groups=1):
    return [_conv(cin, cout, k, stride, groups), nn.BatchNorm2d(cout), nn.ReLU()]


class MobileBlock(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        self.residual = stride == 1 and cin == cout
        self.conv = nn.Sequential(*_conv_bn_relu(cin, hidden, 1), *_conv_bn_relu(hidden, hidden, 3, stride, hidden),
                                  _conv(hidden, cout, 1), nn.BatchNorm2d(cout))

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
        for t, c, n, s in MOBILE_SETTINGS:
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
            if k in (1, 2, 4, 6):
                feats[f"stage{(1, 2, 4, 6).index(k) + 1}"] = x
        feats["pooled"] = _pool(self.conv2(x))
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
        self.conv1, self.bn1 = _conv(cin, mid, 1, groups=self.g), nn.BatchNorm2d(mid)
        self.conv2, self.bn2 = _conv(mid, mid, 3, stride, mid), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = _conv(mid, cout, 1, groups=groups), nn.BatchNorm2d(cout)

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
        self.conv1, self.bn1 = _conv(3, 24, 1), nn.BatchNorm2d(24)
        cin = 24
        for s, (planes, n) in enumerate(zip(out_planes, num_blocks), 1):
            blocks = [ShuffleV1Block(cin, planes - cin, 2, groups)]
            blocks += [ShuffleV1Block(planes, planes, 1, groups) for _ in range(1, n)]
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
            cin = planes
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
        return _three_layers(self, x, lambda y: y)


def _three_layers(net, x, head):
    x = F.relu(net.bn1(net.conv1(x)))
    feats = {"stem": x}
    for s in range(1, 4):
        x = feats[f"layer{s}"] = getattr(net, f"layer{s}")(x)
    feats["pooled"] = _pool(head(x))
    return net.linear(feats["pooled"]), feats


class ShuffleV2Block(nn.Module):
    def __init__(self, cin):
        super().__init__()
        c = cin // 2
        self.conv1, self.bn1 = _conv(c, c, 1), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = _conv(c, c, 3, groups=c), nn.BatchNorm2d(c)
        self.conv3, self.bn3 = _conv(c, c, 1), nn.BatchNorm2d(c)

    def forward(self, x):
        kept, out = x.chunk(2, dim=1)
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(out)))))
        return shuffle(torch.cat([kept, F.relu(self.bn3(self.conv3(out)))], 1), 2)


class ShuffleV2Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        mid = cout // 2
        self.conv1, self.bn1 = _conv(cin, cin, 3, 2, cin), nn.BatchNorm2d(cin)
        self.conv2, self.bn2 = _conv(cin, mid, 1), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = _conv(cin, mid, 1), nn.BatchNorm2d(mid)
        self.conv4, self.bn4 = _conv(mid, mid, 3, 2, mid), nn.BatchNorm2d(mid)
        self.conv5, self.bn5 = _conv(mid, mid, 1), nn.BatchNorm2d(mid)

    def forward(self, x):
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x)))))
        return shuffle(torch.cat([left, F.relu(self.bn5(self.conv5(right)))], 1), 2)


class ShuffleNetV2(nn.Module):
    """``models/ShuffleNetv2.py`` (``ShuffleV2``, net size 1): ``conv1``/``bn1``, ``layer{s}.0`` the
    down-sampling unit, ``layer{s}.{i}``, ``conv2``/``bn2``, ``linear``."""

    def __init__(self, num_classes=100, out_planes=(116, 232, 464, 1024), num_blocks=(3, 7, 3)):
        super().__init__()
        self.conv1, self.bn1 = _conv(3, 24, 1), nn.BatchNorm2d(24)
        cin = 24
        for s, (planes, n) in enumerate(zip(out_planes, num_blocks), 1):
            setattr(self, f"layer{s}", nn.Sequential(ShuffleV2Down(cin, planes), *[ShuffleV2Block(planes) for _ in range(n)]))
            cin = planes
        self.conv2, self.bn2 = _conv(cin, out_planes[3], 1), nn.BatchNorm2d(out_planes[3])
        self.linear = nn.Linear(out_planes[3], num_classes)

    def forward(self, x):
        return _three_layers(self, x, lambda y: F.relu(self.bn2(self.conv2(y))))


TWINS = {
    **{f"resnet{d}": (lambda d: lambda nc, **kw: ZooResNet(d, (16, 16, 32, 64), nc, **kw))(d)
       for d in (8, 14, 20, 32, 44, 56, 110)},
    **{f"resnet{d}x4": (lambda d: lambda nc, **kw: ZooResNet(d, (32, 64, 128, 256), nc, **kw))(d) for d in (8, 32)},
    "mobile_half": lambda nc, **kw: MobileHalf(nc, **{"width": 0.5, **kw}),
    "shufflev1": lambda nc, **kw: ShuffleNetV1(nc, **kw),
    "shufflev2": lambda nc, **kw: ShuffleNetV2(nc, **kw),
}
