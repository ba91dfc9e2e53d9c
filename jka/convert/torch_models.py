"""PyTorch twins of the Flax model zoo (:mod:`jka.models`), for checkpoint conversion and tests.

Parameter names follow the PyTorch originals (DAFL/CMI CIFAR ResNet and Generator, CRD/RepDistiller
WRN, VGG-BN and ``resnetv2.py`` ResNets, torchvision MobileNetV2, ResNet and VGG16; the rest of the
CIFAR KD benchmark's zoo, and the ResNet blocks all share, are in :mod:`jka.convert.torch_cifar_zoo`), so their
state dicts load here unchanged;
the SegNet twin uses ``encoder.b``/``decoder.k`` Sequentials. Where a family's names need more than
the rule below, :mod:`jka.convert.families` holds its explicit rename table. Every
``forward`` returns ``(logits, features)`` with the same feature names as the Flax model (NCHW).
Every image model takes ``in_channels`` (default 3), as the Flax models take any number of channels.

The Flax parameter path of a PyTorch key is given by :func:`flax_path`: split the module path on
``.``, glue every all-digit segment to the one before it with ``_`` and rename the leaf
(conv/linear ``weight`` -> ``kernel``, BN ``weight`` -> ``scale``, ``running_mean``/``running_var``
-> ``mean``/``var`` in ``batch_stats``). Conv kernels go OIHW -> HWIO, linear weights are transposed.

Only import this module when torch is installed; nothing else in ``jka`` imports torch eagerly.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from jka import errors
from jka.models import segnet, vgg16_graft
from jka.models.mobilenetv2 import SETTINGS as MOBILENETV2_SETTINGS, make_divisible
from jka.models.vgg import CFGS as VGG_CFGS
from jka.convert.torch_cifar_zoo import TWINS as CIFAR_ZOO_TWINS, BasicBlock, Bottleneck, ResNet, conv, pool
from jka.convert.naming import flax_path  # noqa: F401  (torch-free; re-exported here)

# ---------------------------------------------------------------- CIFAR ResNet (DAFL / CMI "8x", resnetv2.py)


class CifarResNet(ResNet):
    """A 3x3 stem, no max-pool, four stages of 64..512; the shortcut ``shortcut``, the head ``linear``."""

    def __init__(self, num_blocks, num_classes=10, block=BasicBlock, in_channels=3):
        super().__init__(block, num_blocks, num_classes, in_channels, imagenet=False, shortcut="shortcut",
                         head="linear")


# ---------------------------------------------------------------- Wide ResNet (CRD / RepDistiller)


class WRNBlock(nn.Module):
    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(in_planes), conv(in_planes, out_planes, 3, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(out_planes), conv(out_planes, out_planes, 3)
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = None if self.equal_in_out else conv(in_planes, out_planes, 1, stride)

    def forward(self, x):
        act = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return (x if self.equal_in_out else self.convShortcut(act)) + out


class NetworkBlock(nn.Module):
    def __init__(self, n, in_planes, out_planes, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WRNBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1)
                                     for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, widen_factor, num_classes=10, in_channels=3):
        super().__init__()
        ch = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = conv(in_channels, ch[0], 3)
        for b in range(1, 4):
            setattr(self, f"block{b}", NetworkBlock((depth - 4) // 6, ch[b - 1], ch[b], 1 if b == 1 else 2))
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.fc = nn.Linear(ch[3], num_classes)

    def forward(self, x):
        feats, x = {}, self.conv1(x)
        for b in range(1, 4):
            x = feats[f"block{b}"] = getattr(self, f"block{b}")(x)
        feats["pooled"] = pool(F.relu(self.bn1(x)))
        return self.fc(feats["pooled"]), feats


# ---------------------------------------------------------------- VGG-BN (CRD / RepDistiller)


class VGG(nn.Module):
    def __init__(self, cfg, num_classes=10, in_channels=3):
        super().__init__()
        in_ch = in_channels
        for b, widths in enumerate(cfg):
            layers = []
            for v in widths:
                layers += [nn.Conv2d(in_ch, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                in_ch = v
            setattr(self, f"block{b}", nn.Sequential(*layers[:-1]))  # last ReLU applied in forward
        self.pool = nn.MaxPool2d(2, 2)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x):
        h = x.shape[2]
        feats = {}
        for b in range(5):
            x = F.relu(getattr(self, f"block{b}")(x))
            feats[f"block{b}" if b else "stem"] = x
            if b < 3 or (b == 3 and h == 64):
                x = self.pool(x)
        feats["pooled"] = pool(x)
        return self.classifier(feats["pooled"]), feats


# ---------------------------------------------------------------- MobileNetV2 (torchvision)


def conv_bn_relu6(inp, out, kernel=3, stride=1, groups=1):
    return nn.Sequential(conv(inp, out, kernel, stride, groups), nn.BatchNorm2d(out), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = [conv_bn_relu6(inp, hidden, 1)] if expand_ratio != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, hidden), conv(hidden, oup, 1), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=1000, width=1.0, stem_stride=2, in_channels=3):
        super().__init__()
        inp = make_divisible(32 * width)
        self.last_channel = make_divisible(1280 * max(1.0, width))
        layers = [conv_bn_relu6(in_channels, inp, 3, stem_stride)]
        self.stage_ends = []  # indices into features whose output ends a resolution stage
        for t, c, n, s in MOBILENETV2_SETTINGS:
            oup = make_divisible(c * width)
            for i in range(n):
                stride = s if i == 0 else 1
                if stride != 1 and len(layers) > 1:
                    self.stage_ends.append(len(layers) - 1)
                layers.append(InvertedResidual(inp, oup, stride, t))
                inp = oup
        layers.append(conv_bn_relu6(inp, self.last_channel, 1))
        self.stage_ends.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))

    def forward(self, x):
        feats = {}
        for k, layer in enumerate(self.features):
            x = layer(x)
            if k in self.stage_ends:
                feats[f"stage{self.stage_ends.index(k) + 1}"] = x
        feats["pooled"] = pool(x)
        return self.classifier(feats["pooled"]), feats


# ---------------------------------------------------------------- small CNN (jka's own)


class SmallCNN(nn.Module):
    def __init__(self, num_classes=10, width=1.0, in_channels=3):
        super().__init__()
        ch = [max(1, int(round(c * width))) for c in (32, 64, 128)]
        prev = in_channels
        for i, c in enumerate(ch, 1):
            setattr(self, f"conv{i}", nn.Conv2d(prev, c, 3, 1, 1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(c))
            prev = c
        self.linear = nn.Linear(ch[-1], num_classes)

    def forward(self, x):
        feats = {}
        for i in range(1, 4):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
            feats[f"block{i}"] = x
            if i == 2:
                x = F.max_pool2d(x, 2, 2)
        feats["pooled"] = pool(x)
        return self.linear(feats["pooled"]), feats


# ---------------------------------------------------------------- data-free generator (DAFL / CMI layout)


class Generator(nn.Module):
    """``l1`` Linear → ``view(B, C, S/4, S/4)`` → ``conv_blocks``: BN, ×2 up, conv3×3, BN, LeakyReLU(0.2),
    ×2 up, conv3×3, BN, LeakyReLU, [conv3×3, BN, LeakyReLU for the large one,] conv3×3 → nc, sigmoid.

    ``start_mult=4`` is :class:`jka.models.generators.Generator` (4ngf → 2ngf → ngf → nc),
    ``start_mult=8`` its ``LargeGenerator``, ``start_mult=2`` its ``SmallGenerator`` (2ngf → 2ngf → ngf). ``forward(z)`` returns the images (NCHW, in [0, 1]).
    """

    def __init__(self, nz=256, ngf=64, img_size=32, nc=3, start_mult=4):
        super().__init__()
        self.init_size = img_size // 4
        c0 = start_mult * ngf
        self.l1 = nn.Sequential(nn.Linear(nz, c0 * self.init_size ** 2))
        chans = [m * ngf for m in {2: (2, 1), 4: (2, 1), 8: (4, 2, 1)}[start_mult]]  # as jka's generators
        layers, prev = [nn.BatchNorm2d(c0)], c0
        for i, c in enumerate(chans):
            if i < 2:
                layers.append(nn.Upsample(scale_factor=2))
            layers += [nn.Conv2d(prev, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.2, inplace=True)]
            prev = c
        layers += [nn.Conv2d(prev, nc, 3, 1, 1), nn.Sigmoid()]
        self.conv_blocks = nn.Sequential(*layers)

    def forward(self, z):
        x = self.l1(z).view(z.shape[0], -1, self.init_size, self.init_size)
        return self.conv_blocks(x)


# ---------------------------------------------------------------- VGG16 without BN and its graft student


class VGG16(nn.Module):
    """torchvision-layout VGG16 ``features.N`` (conv + ReLU, a max-pool per block, no BN) and
    ``classifier`` Linear-BN1d-Linear on the globally pooled map (the NetGraft teacher).

    With ``teacher_widths`` it is the graft student: ``adapters_in.b`` (b ≥ 1; ``.0`` is an identity)
    and ``adapters_out.b`` are 1×1 convs without bias around every block. A block's max-pool is
    skipped once the map is 1 px tall, as in :mod:`jka.models.vgg16_graft`.
    """

    def __init__(self, num_classes, widths, hidden, teacher_widths=None, in_channels=3):
        super().__init__()
        layers, prev, self.block_slices = [], in_channels, []
        for b, n in enumerate(vgg16_graft.NUM_CONVS):
            start = len(layers)
            for _ in range(n):
                layers += [nn.Conv2d(prev, widths[b], 3, padding=1), nn.ReLU(inplace=True)]
                prev = widths[b]
            self.block_slices.append((start, len(layers)))  # the block's pool sits at index ``stop``
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.graft = teacher_widths is not None
        if self.graft:
            self.adapters_in = nn.ModuleList([nn.Identity()] + [
                nn.Conv2d(teacher_widths[b - 1], widths[b - 1], 1, bias=False) for b in range(1, 5)])
            self.adapters_out = nn.ModuleList([nn.Conv2d(widths[b], teacher_widths[b], 1, bias=False)
                                               for b in range(5)])
            prev = teacher_widths[-1]
        self.classifier = nn.Sequential(nn.Linear(prev, hidden), nn.BatchNorm1d(hidden), nn.Linear(hidden, num_classes))

    def forward(self, x):
        feats = {}
        for b, (start, stop) in enumerate(self.block_slices):
            if self.graft:
                x = self.adapters_in[b](x)
            for layer in self.features[start:stop]:
                x = layer(x)
            if x.shape[2] >= 2:
                x = self.features[stop](x)
            if self.graft:
                x = self.adapters_out[b](x)
            feats[f"block{b + 1}"] = x
        pooled = x.mean(dim=(2, 3))
        feats["pooled"] = pooled
        return self.classifier(pooled), feats


def _vgg16(num_classes, graft, width=1.0, in_channels=3):
    v = vgg16_graft
    teacher = v.scaled(v.TEACHER_WIDTHS, width)
    hidden = v.scaled((v.CLASSIFIER_HIDDEN,), width)[0]
    if graft:
        return VGG16(num_classes, v.scaled(v.STUDENT_WIDTHS, width), hidden, teacher, in_channels)
    return VGG16(num_classes, teacher, hidden, None, in_channels)


# ---------------------------------------------------------------- SegNet-VGG16-BN


def _segnet_blocks(width, in_channels):
    """Encoder and decoder ``nn.ModuleList``s of (Conv3×3, BN, ReLU) Sequentials, and the channels
    after the encoder and after every decoder block."""
    s = segnet

    def block(widths, prev):
        layers = []
        for c in widths:
            c = s.scaled(c, width)
            layers += [nn.Conv2d(prev, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            prev = c
        return nn.Sequential(*layers), prev

    prev, enc, dec, chans = in_channels, [], [], []
    for widths in s.ENCODER:
        b, prev = block(widths, prev)
        enc.append(b)
    chans.append(prev)
    for widths in s.DECODER:
        b, prev = block(widths, prev)
        dec.append(b)
        chans.append(prev)
    return nn.ModuleList(enc), nn.ModuleList(dec), chans


def _encode(encoder, x):
    indices = []
    for blk in encoder:
        x, idx = F.max_pool2d(blk(x), 2, 2, return_indices=True)
        indices.append(idx)
    return x, indices


def _decode(blk, x, indices, k):
    """Decoder block ``k`` (0-based): unpool with the mirrored encoder block's indices, then convs."""
    return blk(F.max_unpool2d(x, indices[len(indices) - 1 - k], 2, 2))


class SegNet(nn.Module):
    """``encoder.b`` / ``decoder.k``: ``nn.Sequential`` of (Conv3×3, BN, ReLU) per conv; every encoder
    block ends with a 2×2 max-pool keeping its indices, every decoder block starts by unpooling with
    those of the mirrored encoder block; ``head`` is a 3×3 conv to ``num_classes`` channels.
    ``forward`` returns ``(out, features)`` as :class:`jka.models.segnet.SegNet` (NCHW).
    """

    def __init__(self, num_classes, width=1.0, in_channels=3):
        super().__init__()
        self.encoder, self.decoder, chans = _segnet_blocks(width, in_channels)
        self.head = nn.Conv2d(chans[-1], num_classes, 3, padding=1)

    def forward(self, x):
        x, indices = _encode(self.encoder, x)
        feats = {"encoder": x, "pooled": x.mean(dim=(2, 3))}
        for k, blk in enumerate(self.decoder):
            x = _decode(blk, x, indices, k)
            feats[f"dec{k + 1}"] = x
        return self.head(x), feats


class ChannelAttention(nn.Module):
    """``x · σ(excite(ReLU(squeeze(GAP(x)))))`` with 1×1 convs C → max(C/4, 16) → C."""

    def __init__(self, c):
        super().__init__()
        self.squeeze = nn.Conv2d(c, max(c // 4, 16), 1)
        self.excite = nn.Conv2d(max(c // 4, 16), c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.excite(F.relu(self.squeeze(x.mean(dim=(2, 3), keepdim=True)))))


class TaskBranch(nn.Module):
    def __init__(self, out_channels, width, in_channels, point_channels):
        super().__init__()
        self.adaptors = nn.ModuleList([ChannelAttention(c) for c in point_channels])
        _, self.decoder, chans = _segnet_blocks(width, in_channels)
        self.head = nn.Conv2d(chans[-1], out_channels, 3, padding=1)

    def forward(self, shared, indices, point):
        x = self.adaptors[point](shared)
        for k in range(point, len(self.decoder)):
            x = _decode(self.decoder[k], x, indices, k)
        return self.head(x)


class BranchySegNet(nn.Module):
    """:class:`jka.models.segnet.BranchySegNet`: shared ``encoder``/``decoder`` and per task
    ``tasks.t`` (``adaptors.b`` for every branch point, its own ``decoder`` copy, ``head``).
    ``forward`` returns ``(per-task outputs, {'encoder', 'pooled'})`` for ``branch_points``.
    """

    def __init__(self, num_classes, width=1.0, task_channels=None, branch_points=None, in_channels=3):
        super().__init__()
        if task_channels is None or sum(task_channels) != num_classes:
            raise errors.ConfigError("branchy_segnet needs task_channels (one output width per task) "
                                     "summing to num_classes")
        self.encoder, self.decoder, chans = _segnet_blocks(width, in_channels)
        self.tasks = nn.ModuleList([TaskBranch(c, width, in_channels, chans) for c in task_channels])
        self.branch_points = None if branch_points is None else tuple(int(p) for p in branch_points)

    def forward(self, x):
        points = self.branch_points or ()
        if len(points) != len(self.tasks):
            raise errors.ConfigError(f"the branchy student needs one branch point per task ({len(self.tasks)}); "
                                     f"got {list(points)}: pass branch_points in --kwargs")
        x, indices = _encode(self.encoder, x)
        maps = [x]
        for k, blk in enumerate(self.decoder):
            maps.append(_decode(blk, maps[-1], indices, k))
        outs = tuple(task(maps[p], indices, p) for task, p in zip(self.tasks, points))
        return outs, {"encoder": maps[0], "pooled": maps[0].mean(dim=(2, 3))}

# ---------------------------------------------------------------- registry

_TORCH_REGISTRY = {
    "cifar_resnet18": partial(CifarResNet, [2, 2, 2, 2]),
    "cifar_resnet34": partial(CifarResNet, [3, 4, 6, 3]),
    "cifar_resnet50": partial(CifarResNet, [3, 4, 6, 3], block=Bottleneck),
    **{f"wrn{d}_{k}": partial(WideResNet, d, k) for d in (16, 40) for k in (1, 2)},
    **{f"vgg{d}_bn": partial(VGG, VGG_CFGS[c]) for d, c in zip((8, 11, 13, 16, 19), "SABDE")},
    "mobilenetv2": MobileNetV2,
    "mobilenetv2_x0_5": partial(MobileNetV2, width=0.5),
    "resnet18": partial(ResNet, BasicBlock, [2, 2, 2, 2]),
    "resnet34": partial(ResNet, BasicBlock, [3, 4, 6, 3]),
    "resnet50": partial(ResNet, Bottleneck, [3, 4, 6, 3]),
    "small_cnn": SmallCNN,
    # num_classes is ignored for the generators (options: nz, ngf, img_size, nc)
    "generator": lambda num_classes, **kw: Generator(**kw, start_mult=4),
    "large_generator": lambda num_classes, **kw: Generator(**kw, start_mult=8),
    "vgg16_teacher": partial(_vgg16, graft=False),
    "vgg16_graft": partial(_vgg16, graft=True),
    "segnet": SegNet,
    "branchy_segnet": BranchySegNet,
    **CIFAR_ZOO_TWINS,
}


def torch_available() -> list[str]:
    return sorted(_TORCH_REGISTRY)


def torch_create(name: str, num_classes: int, **kwargs) -> nn.Module:
    """The PyTorch twin of ``jka.models.create(name, num_classes, **kwargs)``."""
    if name not in _TORCH_REGISTRY:
        raise errors.unknown_choice("model", name, torch_available())
    return _TORCH_REGISTRY[name](num_classes, **kwargs)
