"""Per-architecture details of the bridge that the generic name rule cannot express (torch-free).

Most of the zoo maps PyTorch keys onto Flax paths by :func:`jka.convert.naming.flax_path` alone.
Three families need a little more, kept here in one place:

* **Explicit rename tables** (PyTorch module path → Flax module path, dot-separated) where the
  PyTorch layout indexes an ``nn.Sequential`` whose positions do not match Flax's module names:

  - ``generator`` / ``large_generator`` (DAFL/CMI layout): ``l1.0`` is the Linear, ``conv_blocks.N``
    the BN/Conv layers in order (``conv_blocks.0`` → ``bn0``, ``.2`` → ``conv1``, ``.3`` → ``bn1``, ...,
    last conv → ``conv_out``);
  - ``vgg16_teacher`` / ``vgg16_graft`` (torchvision layout, no BN): ``features.N`` (conv ``j`` of
    block ``b``) → ``convs_{b}_{j}``; ``classifier.0/1/2`` → ``classifier_fc1/_bn/_fc2``; the graft
    student's ``adapters_in.b``/``adapters_out.b`` follow the generic rule;
  - ``branchy_segnet``: the same encoder; shared ``decoder.k.*`` → ``shared_dec{k+1}.*``; per task
    ``tasks.t.decoder.k.*`` → ``task{t}.dec{k+1}.*``, ``tasks.t.adaptors.b.{squeeze,excite}`` →
    ``task{t}.adaptor{b}.*``, ``tasks.t.head`` → ``task{t}.head`` (up to 16 tasks);
  - ``segnet``: ``encoder.b.(3j)`` / ``encoder.b.(3j+1)`` (conv / BN ``j`` of block ``b``) →
    ``encoder.enc{b+1}.conv{j}.conv`` / ``.bn``; ``decoder.k.*`` → ``dec{k+1}.conv{j}.*``; ``head``.

  - the CIFAR KD benchmark's ``resnet8 .. resnet110``, ``resnet8x4``, ``resnet32x4``
    (RepDistiller ``models/resnet.py``): ``layer{s}.0.downsample.{j}`` → ``layer{s}_0.shortcut_{j}``,
    ``fc`` → ``linear`` (jka's CIFAR ResNet block names its shortcut ``shortcut``, its head ``linear``).

* **The benchmark's model names** (:data:`ZOO_NAMES`): RepDistiller / mdistiller name their networks
  ``ResNet50``, ``wrn_40_2``, ``vgg13``, ``MobileNetV2``, ``ShuffleV1`` ...; conversion takes those
  names too and writes jka's (``cifar_resnet50``, ``wrn40_2``, ``vgg13_bn``, ``mobile_half``,
  ``shufflev1`` ...) into ``model.json``; so do chenyaofo/pytorch-cifar-models' ``cifar100_resnet20 ..
  56`` (and ``cifar10_``), the same networks under the same keys. Each name also says which input
  normalisation its checkpoints were trained with (:func:`known_normalisation`, into ``model.json``).

* **A tensor re-ordering** for the generators' ``l1`` Linear: PyTorch reshapes its output with
  ``view(B, C, S, S)`` (channel-major) while Flax reshapes to ``(B, S, S, C)``, so the rows of the
  weight and the bias are permuted from ``(c, i, j)`` to ``(i, j, c)`` order (and back on export).

* **The model and its input**: generators are not in :mod:`jka.models`'s registry; they are built
  from :mod:`jka.models.generators` with the options ``nz, ngf, img_size, nc`` (``num_classes`` is
  ignored for them) and take a latent batch ``(B, nz)`` instead of an image.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jka import models
from jka.models import segnet, vgg16_graft
from jka.models.generators import Generator, LargeGenerator

# ---------------------------------------------------------------- which model, which input

# The CIFAR KD benchmark's names (RepDistiller / mdistiller ``model_dict``) that differ from jka's.
ZOO_NAMES = {
    "ResNet18": "cifar_resnet18", "ResNet34": "cifar_resnet34", "ResNet50": "cifar_resnet50",
    **{f"wrn_{d}_{k}": f"wrn{d}_{k}" for d in (16, 40) for k in (1, 2)},
    **{f"vgg{d}": f"vgg{d}_bn" for d in (8, 11, 13, 16, 19)},
    "MobileNetV2": "mobile_half", "ShuffleV1": "shufflev1", "ShuffleV2": "shufflev2",
    # chenyaofo/pytorch-cifar-models' hub ResNets: the same network and key names as the benchmark's
    # (its VGGs, MobileNetV2s and ShuffleNetV2s are other networks: not mapped)
    **{f"cifar{c}_resnet{d}": f"resnet{d}" for c in (10, 100) for d in (20, 32, 44, 56)},
}


def arch_name(arch: str) -> str:
    """jka's name of architecture ``arch`` (a benchmark name of :data:`ZOO_NAMES` or jka's own)."""
    return ZOO_NAMES.get(arch, arch)


# The input normalisation (mean, std) the distributed checkpoints were trained with, for model.json:
# RepDistiller's and mdistiller's CIFAR-100 loaders (the teacher zoo), and chenyaofo's training
# recipe for its hub models.
ZOO_STATS = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
HUB_STATS = {"cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
             "cifar100": ((0.5070, 0.4865, 0.4409), (0.2673, 0.2564, 0.2761))}
# jka names whose only public checkpoints are the zoo's (RepDistiller names them the same way)
ZOO_RESNETS = (*(f"resnet{d}" for d in (8, 14, 20, 32, 44, 56, 110)), "resnet8x4", "resnet32x4")


def known_normalisation(arch: str) -> dict:
    """``{'mean', 'std'}`` of the checkpoints distributed under the name ``arch`` (as given to
    ``jka convert``), or ``{}`` where the name does not say."""
    hub = arch.split("_")[0]
    if hub in HUB_STATS and arch in ZOO_NAMES:
        mean, std = HUB_STATS[hub]
    elif arch in ZOO_NAMES or arch in ZOO_RESNETS:
        mean, std = ZOO_STATS
    else:
        return {}
    return {"mean": list(mean), "std": list(std)}


GENERATOR_DEFAULTS = {"nz": 256, "ngf": 64, "img_size": 32, "nc": 3}
GENERATOR_START_MULT = {"generator": 4, "large_generator": 8}


def is_generator(arch: str) -> bool:
    return arch in GENERATOR_START_MULT


def generator_options(kwargs: dict | None) -> dict:
    return {**GENERATOR_DEFAULTS, **(kwargs or {})}


def flax_model(arch: str, num_classes: int, kwargs: dict | None = None, dtype=jnp.float32):
    """The Flax module that a checkpoint of ``arch`` converts into."""
    kwargs = dict(kwargs or {})
    if is_generator(arch):
        cls = Generator if arch == "generator" else LargeGenerator
        return cls(**{k: int(v) for k, v in generator_options(kwargs).items()}, dtype=dtype)
    return models.create(arch, num_classes, dtype=dtype, **kwargs)


def example_input(arch: str, kwargs: dict | None, in_channels: int, size: int, batch: int = 1,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """A float32 input batch: NCHW images (PyTorch layout), or latents ``(B, nz)`` for generators.

    Zeros without ``rng`` (for shape inference), standard normal with it.
    """
    shape = ((batch, int(generator_options(kwargs)["nz"])) if is_generator(arch)
             else (batch, in_channels, size, size))
    return (np.zeros(shape, np.float32) if rng is None else rng.normal(size=shape).astype(np.float32))


def input_size(arch: str, kwargs: dict | None, size: int) -> int:
    """The image side to build ``arch`` on: a ViT's own ``img_size`` (it takes no other), else ``size``."""
    return int((kwargs or {}).get("img_size", 224)) if arch == "vit" else size


def init_method(arch: str, model):
    """The method whose ``init`` creates every parameter (the branchy student's ``__call__`` only
    touches the branches of its chosen points)."""
    return model.init_all if arch == "branchy_segnet" else None


def to_flax_input(x: np.ndarray) -> np.ndarray:
    """PyTorch-layout input → Flax layout (NCHW → NHWC; latents unchanged)."""
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x


def exported_image_shape(arch: str, kwargs: dict | None, size: int, in_channels: int) -> list[int]:
    if is_generator(arch):  # the shape of what the generator produces
        g = generator_options(kwargs)
        return [int(g["img_size"]), int(g["img_size"]), int(g["nc"])]
    return [size, size, in_channels]


# PyTorch twin class (jka.convert.torch_models) of every architecture that has one; torch-free so that
# `jka export` can refuse the others without importing torch (tests/convert checks it against the twins)
TWINS = {
    **dict.fromkeys(("cifar_resnet18", "cifar_resnet34", "cifar_resnet50"), "CifarResNet"),
    **dict.fromkeys(ZOO_RESNETS, "ZooResNet"),
    "mobile_half": "MobileHalf", "shufflev1": "ShuffleNetV1", "shufflev2": "ShuffleNetV2",
    **dict.fromkeys(("wrn16_1", "wrn16_2", "wrn40_1", "wrn40_2"), "WideResNet"),
    **dict.fromkeys(("vgg8_bn", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"), "VGG"),
    **dict.fromkeys(("mobilenetv2", "mobilenetv2_x0_5"), "MobileNetV2"),
    **dict.fromkeys(("resnet18", "resnet34", "resnet50"), "ResNet"),
    "small_cnn": "SmallCNN",
    **dict.fromkeys(("generator", "large_generator"), "Generator"),
    **dict.fromkeys(("vgg16_teacher", "vgg16_graft"), "VGG16"),
    "segnet": "SegNet",
    "branchy_segnet": "BranchySegNet",
}


# ---------------------------------------------------------------- rename tables


def _generator_table(start_mult: int) -> dict[str, str]:
    # conv_blocks: BN0, Up, Conv, BN, LReLU, Up, Conv, BN, LReLU, [Conv, BN, LReLU,] Conv, Sigmoid
    table = {"l1.0": "l1", "conv_blocks.0": "bn0", "conv_blocks.2": "conv1", "conv_blocks.3": "bn1",
             "conv_blocks.6": "conv2", "conv_blocks.7": "bn2"}
    if start_mult == 8:
        table.update({"conv_blocks.9": "conv3", "conv_blocks.10": "bn3", "conv_blocks.12": "conv_out"})
    else:
        table["conv_blocks.9"] = "conv_out"
    return table


def _vgg16_table() -> dict[str, str]:
    table, n = {}, 0  # ``features.N``: conv, ReLU per conv; a max-pool per block
    for b, convs in enumerate(vgg16_graft.NUM_CONVS):
        table.update({f"features.{n + 2 * j}": f"convs_{b}_{j}" for j in range(convs)})
        n += 2 * convs + 1
    table.update({"classifier.0": "classifier_fc1", "classifier.1": "classifier_bn", "classifier.2": "classifier_fc2"})
    return table


def _segnet_table() -> dict[str, str]:
    table = {}
    for side, blocks, flax_block in (("encoder", segnet.ENCODER, "encoder.enc{}"),
                                     ("decoder", segnet.DECODER, "dec{}")):
        for b, widths in enumerate(blocks):
            for j in range(len(widths)):  # each conv is Conv, BN, ReLU in the block's nn.Sequential
                table[f"{side}.{b}.{3 * j}"] = f"{flax_block.format(b + 1)}.conv{j}.conv"
                table[f"{side}.{b}.{3 * j + 1}"] = f"{flax_block.format(b + 1)}.conv{j}.bn"
    return table


BRANCHY_MAX_TASKS = 16  # task indices the branchy table covers


def _branchy_table() -> dict[str, str]:
    plain = _segnet_table()
    table = {k: v for k, v in plain.items() if k.startswith("encoder.")}
    decoder = {k.removeprefix("decoder."): v for k, v in plain.items() if k.startswith("decoder.")}
    table.update({f"decoder.{k}": f"shared_{v}" for k, v in decoder.items()})
    for t in range(BRANCHY_MAX_TASKS):
        table.update({f"tasks.{t}.decoder.{k}": f"task{t}.{v}" for k, v in decoder.items()})
        table[f"tasks.{t}.head"] = f"task{t}.head"
        for b in range(segnet.NUM_POINTS):
            for part in ("squeeze", "excite"):
                table[f"tasks.{t}.adaptors.{b}.{part}"] = f"task{t}.adaptor{b}.{part}"
    return table


def _zoo_resnet_table() -> dict[str, str]:
    """RepDistiller's CIFAR ResNet: the first block of every stage may hold a ``downsample``."""
    table = {f"layer{s}.0.downsample.{j}": f"layer{s}_0.shortcut_{j}" for s in (1, 2, 3) for j in (0, 1)}
    return {**table, "fc": "linear"}


RENAMES: dict[str, dict[str, str]] = {
    **{arch: _zoo_resnet_table() for arch in ZOO_RESNETS},
    "generator": _generator_table(4),
    "large_generator": _generator_table(8),
    "vgg16_teacher": _vgg16_table(),
    "vgg16_graft": _vgg16_table(),
    "segnet": _segnet_table(),
    "branchy_segnet": _branchy_table(),
}
_INVERSE = {arch: {v: k for k, v in table.items()} for arch, table in RENAMES.items()}


def rename(arch: str, torch_key: str) -> str:
    """``torch_key`` with its module path replaced along ``arch``'s table (unchanged if none)."""
    table = RENAMES.get(arch)
    if not table:
        return torch_key
    module, _, leaf = torch_key.rpartition(".")
    return f"{table[module]}.{leaf}" if module in table else torch_key


def torch_module(arch: str, flax_modules: tuple[str, ...]) -> str | None:
    """The PyTorch module path of a renamed Flax module path, or None if ``arch`` has no entry."""
    return _INVERSE.get(arch, {}).get(".".join(flax_modules))


# ---------------------------------------------------------------- tensor re-ordering


def reorder(arch: str, kwargs: dict | None, torch_key: str, value: np.ndarray, to_torch: bool = False) -> np.ndarray:
    """Arch-specific re-ordering of a tensor, still in PyTorch layout: PyTorch's order → Flax's, or
    back with ``to_torch``."""
    if is_generator(arch) and rename(arch, torch_key).split(".")[0] == "l1":
        g = generator_options(kwargs)
        c0, s = GENERATOR_START_MULT[arch] * int(g["ngf"]), int(g["img_size"]) // 4
        if value.shape[0] != c0 * s * s:  # left for the shape check to report
            return value
        rest = value.shape[1:]
        rows, order = ((s, s, c0), (2, 0, 1)) if to_torch else ((c0, s, s), (1, 2, 0))
        return value.reshape(*rows, *rest).transpose(*order, *range(3, 3 + len(rest))).reshape(value.shape)
    return value
