"""What several shipped configs share: a config holding every base key at its default, the digits
teachers, CIFAR data. A config sets only what differs from the defaults; ``jka configs NAME`` prints
the whole of it."""
from __future__ import annotations

import ml_collections

from jka.settings import defaults
from jka.train.schema import Base

DIGITS_HALVES = ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])


def config(algorithm: str = "supervised", **sections) -> ml_collections.ConfigDict:
    """Every base key at its default (:mod:`jka.train.schema`), ``algorithm``, and ``sections``
    (a method's settings: only what differs from its defaults)."""
    cfg = ml_collections.ConfigDict(defaults(Base))
    cfg.algorithm = algorithm
    for key, value in sections.items():
        cfg[key] = value
    return cfg


def digits_teacher(classes=None, steps: int = 600, arch: str = "small_cnn", **kwargs) -> ml_collections.ConfigDict:
    """A digits classifier trained from labels on ``classes`` (all ten when None): small_cnn, SGD 0.05
    cosine, batch 64, no crop (a shift of one pixel moves an 8×8 digit by an eighth of its size)."""
    cfg = config("supervised")
    cfg.data.classes = None if classes is None else list(classes)
    cfg.model.name = arch
    cfg.model.kwargs = dict(kwargs)
    cfg.train.steps = steps
    return cfg


def teacher_specs(classes_list, archs=None, steps: int = 600, image_size: int = 8, names=None) -> list[dict]:
    """Teachers trained from labels on each class subset (first, when their workdir is empty), in
    ``WORKDIR/teacher_<a|b|...>[_<arch>]``."""
    specs = []
    for k, classes in enumerate(classes_list):
        arch = archs[k] if archs else "small_cnn"
        cfg = digits_teacher(classes, steps, arch)
        cfg.data.image_size = image_size
        name = names[k] if names else f"teacher_{'abcdefgh'[k]}" + (f"_{arch}" if archs else "")
        specs.append(dict(workdir=name, classes=list(classes), config=cfg))
    return specs


def cifar_data(cfg, name: str = "cifar10", batch_size: int = 128) -> ml_collections.ConfigDict:
    """A tfds CIFAR dataset at 32 px with the standard augmentation (crop with 4 px padding, flip)."""
    cfg.data.update(name=name, image_size=32, batch_size=batch_size)
    cfg.data.augment.crop_pad = 4
    cfg.data.augment.flip = True
    return cfg
