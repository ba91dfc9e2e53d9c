"""Every key of a run's config outside its method's section, with its default, its rule and what it
means (:mod:`jka.settings`); :func:`check` refuses the first bad value, or a key no run reads, before
any work. A method's own section (``cfg.<method>``) is declared by the method (``jka.methods``).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from jka import models
from jka.config import brief
from jka.data.augment import RATIO, SCALE
from jka.data.readers import READERS, check_reader
from jka.data.sources import check_names
from jka.errors import ConfigError
from jka.settings import (ANY, BOOL, TEXT, Rule, choice, integer, is_dict, is_int, is_number, optional, read,
                          sequence, setting)
from jka.train.metrics import WRITERS, check_writers
from jka.train.state import Optim
from jka.train.teachers import DTYPES


def _classes_ok(v) -> bool:
    return (isinstance(v, (list, tuple)) and len(v) > 0 and all(is_int(c) and c >= 0 for c in v)
            and len(set(v)) == len(v))


def _range_ok(v, high: float = float("inf")) -> bool:
    return (isinstance(v, (list, tuple)) and len(v) == 2 and all(is_number(x) for x in v)
            and 0 < v[0] <= v[1] <= high)


CLASSES = Rule(_classes_ok, "a non-empty list of distinct class indices >= 0")
SECTION = Rule(is_dict, "a dict")
LIST_OF_DICTS = Rule(lambda v: v is None or (isinstance(v, (list, tuple)) and all(is_dict(x) for x in v)),
                     "None or a list of dicts")


@dataclasses.dataclass(frozen=True)
class Augment:
    crop_pad: int = setting(0, integer(0), "random crop after padding by this many black pixels (0: none)")
    flip: bool = setting(False, BOOL, "random horizontal flip")
    resized_crop: int = setting(0, integer(0), "RandomResizedCrop to this side, torchvision's (0: none)")
    crop_scale: tuple = setting(SCALE, Rule(lambda v: _range_ok(v, 1.0), "two numbers 0 < low <= high <= 1"),
                                "the resized crop's area, a fraction of the image's: (low, high)")
    crop_ratio: tuple = setting(RATIO, Rule(_range_ok, "two numbers 0 < low <= high"),
                                "the resized crop's aspect ratio (width / height), log-uniform in (low, high)")
    eval_resize: int = setting(0, integer(0), "evaluation: the shorter side resized to this (0: none)")
    eval_crop: int = setting(0, integer(0), "evaluation: then a centre crop of this side (0: none)")


@dataclasses.dataclass(frozen=True)
class Data:
    name: str = setting("digits", TEXT, "digits, a tfds name, scenes, nyuv2, or several sources' union")
    image_size: Optional[int] = setting(None, optional(integer(1), "None (the dataset's own size: digits 8×8)"),
                                        "images resized to this side")
    batch_size: int = setting(64, integer(1), "images per step (a multiple of the device count)")
    classes: Optional[list] = setting(None, optional(CLASSES, "None (every class)"), "a class subset, relabelled in order")
    data_dir: Optional[str] = setting(None, optional(TEXT), "where tfds (or NYUv2) data was prepared")
    in_memory: Optional[bool] = setting(None, Rule(lambda v: v is None or isinstance(v, bool),
                                                   "True (in host memory), False (read on demand) or None (auto)"),
                                        "hold a tfds split in host memory (None: when it takes <= 4 GiB)")
    read_workers: int = setting(0, integer(0), "reader processes for on-demand reads (0: one thread)")
    reader: str = setting("jka", choice("data.reader", READERS),
                          "who reads on-demand data: jka's reader or grain (pip install 'jka[grain]')")
    augment: Augment = setting(Augment())
    relabel: Optional[str] = setting(None, optional(TEXT), "digits relabelled by a named labeling (transfer zoo)")
    relabel_seed: int = setting(0, integer(0), "seed of the random labelings")
    sources: Optional[list] = setting(None, LIST_OF_DICTS, "several datasets stacked (tfds names or image folders)")
    num_classes: Optional[int] = setting(None, optional(integer(1)), "classes of a dense dataset (None: its own)")
    train_size: Optional[int] = setting(None, optional(integer(1)), "procedural scenes: training images")
    test_size: Optional[int] = setting(None, optional(integer(1)), "procedural scenes: test images")
    scene_seed: int = setting(0, integer(0), "procedural scenes: seed")
    image_key: str = setting("image", TEXT, "tfds feature holding the image")
    label_key: str = setting("label", TEXT, "tfds feature holding the label")


@dataclasses.dataclass(frozen=True)
class Model:
    name: str = setting("small_cnn", choice("model", models.available()), "the student's architecture")
    kwargs: dict = setting({}, SECTION, "the architecture's options, e.g. {'width': 0.5}")


@dataclasses.dataclass(frozen=True)
class Mesh:
    data: int = setting(-1, integer(1, -1), "devices the batch is split over (-1: all)")
    model: int = setting(1, integer(1), "devices large arrays are split over (FSDP-style)")


@dataclasses.dataclass(frozen=True)
class Shard:
    teachers: bool = setting(True, BOOL, "split the teachers' large arrays over the mesh's model axis")
    state: bool = setting(False, BOOL, "split the training state's large arrays too")
    min_size: int = setting(1 << 14, integer(1), "arrays of at least this many elements are split")


@dataclasses.dataclass(frozen=True)
class Train:
    steps: int = setting(1000, integer(1), "loop steps (a step of a data-free method is a unit or a round)")
    log_every: int = setting(50, integer(1))
    eval_every: int = setting(0, integer(0), "evaluate every this many steps (0: at the end only)")
    checkpoint_every: int = setting(1000, integer(0))
    keep_checkpoints: int = setting(3, integer(1))
    dtype: str = setting("float32", choice("dtype", DTYPES), "compute dtype (parameters stay float32)")
    progress: bool = setting(True, BOOL, "a progress bar on a terminal")
    mesh: Mesh = setting(Mesh())
    init_from: str = setting("", Rule(lambda v: isinstance(v, str), "a path (or '' for none)"),
                             "start from this exported model unless the run has a checkpoint")
    shard: Shard = setting(Shard())
    writers: Optional[list] = setting(None, optional(sequence(choice("writer", WRITERS)), "None (jsonl, and "
                                      "tensorboard when tensorboardX is installed)"),
                                      "where metrics go: a list from " + ", ".join(WRITERS))
    compile_cache: str = setting("auto", Rule(lambda v: isinstance(v, str), "'auto', a directory, or '' (off)"),
                                 "jax's persistent compilation cache: 'auto' is <the workdir's parent>/.jax_cache "
                                 "(a local workdir; $JAX_COMPILATION_CACHE_DIR wins), a directory, or '' for none")


TEACHER_KEYS = {"workdir": "an exported model, or where to train it", "classes": "dataset classes of its outputs",
                "config": "the config it is trained from when its workdir holds no model",
                "overrides": "overrides of a config given by path", "arch": "its architecture (jka check)",
                "task": "task branching: the task's name", "kind": "task branching: segmentation or depth",
                "name": "transfer study: the model's name"}


@dataclasses.dataclass(frozen=True)
class Base:
    """The keys every run has (``cfg.<method>``, the method's own section, comes beside them)."""

    algorithm: str = setting("supervised", TEXT, "the method (jka configs lists them)")
    seed: int = setting(0, integer(0, high=2 ** 32 - 1))
    data: Data = setting(Data())
    model: Model = setting(Model())
    teachers: list = setting([], ANY, "frozen networks: dicts with " + ", ".join(TEACHER_KEYS))
    optim: Optim = setting(Optim())
    train: Train = setting(Train())


def check_networks(specs, where: str) -> None:
    """Each entry of ``teachers`` (or a study's ``zoo``): a dict of known keys with a ``workdir``."""
    if not isinstance(specs, (list, tuple)):
        raise ConfigError(f"{where}={brief(specs)} is not valid: it must be a list of dicts, each with a 'workdir'")
    for i, spec in enumerate(specs):
        key = f"{where}[{i}]"
        if not is_dict(spec):
            raise ConfigError(f"{key}={brief(spec)} is not valid: it must be a dict with a 'workdir'")
        unknown = sorted(set(spec.keys()) - set(TEACHER_KEYS))
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]} is not a key of a network entry (it takes "
                              f"{', '.join(TEACHER_KEYS)}); remove it")
        if not isinstance(spec.get("workdir", None), str) or not spec["workdir"]:
            raise ConfigError(f"{key} needs a 'workdir' (an exported model, or where to train it)")
        if spec.get("classes", None) is not None and not _classes_ok(spec["classes"]):
            raise ConfigError(f"{key}.classes={brief(spec['classes'])} is not valid: it must be {CLASSES.must}")


def check_views(data: Data) -> None:
    """The augmentation's crops agree with each other and with the images' size."""
    aug = data.augment
    if aug.resized_crop and aug.crop_pad:
        raise ConfigError(f"data.augment.resized_crop={aug.resized_crop} and data.augment.crop_pad={aug.crop_pad} "
                          "are two crops; set one of them to 0")
    side = aug.eval_resize or data.image_size
    if aug.eval_crop and side and aug.eval_crop > side:
        raise ConfigError(f"data.augment.eval_crop={aug.eval_crop} is larger than the images it crops ({side} px: "
                          "data.augment.eval_resize or data.image_size); lower it")


# Options a job fills in when it builds the model, so model.kwargs need not give them
# (task branching: one output width per task).
RUN_FILLS = {"branchy_segnet": lambda num_classes: {"task_channels": (num_classes,)}}


def check(cfg, section: str | None) -> Base:
    """The base keys of ``cfg`` read and checked (:class:`Base`); ``section`` is the method's own key,
    left to the method. Refuses a key no run reads, the first bad value, and values that disagree."""
    given = {k: v for k, v in cfg.items() if k != section}
    base = read(Base, given, "")
    check_networks(base.teachers, "teachers")
    if base.optim.warmup_steps >= base.train.steps:
        raise ConfigError(f"optim.warmup_steps={base.optim.warmup_steps} is not valid: it must be less than "
                          f"train.steps ({base.train.steps}); fix it in the config or override optim.warmup_steps=...")
    check_views(base.data)
    n = len(base.data.classes) if base.data.classes else 2
    kwargs = {**RUN_FILLS.get(base.model.name, lambda _: {})(n), **base.model.kwargs}
    models.check_kwargs(base.model.name, kwargs, num_classes=n)
    check_names(cfg.data)
    check_writers(base.train.writers)
    check_reader(base.data.reader)
    return base
