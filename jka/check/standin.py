"""Stand-ins for what a rehearsal does not have here: a dataset not on this machine becomes random
images of its shape, a teacher not exported yet random variables of its architecture.

Inside :func:`standing_in`, the readers of :mod:`jka.data` (``sources.tfds_split``,
``sources.stacked_split``, the NYUv2 reader of :mod:`jka.data.scenes`) are patched to try the real
data first and return random arrays of the configured shape where it is missing, so every method's
own data loading (class subsets, few-shot selection, dense maps) runs unchanged and data that is here
stays real. The shape of a stand-in:

- image size: ``data.image_size``, else the tfds builder's (the CIFARs: 32), else NYUv2's usual 288×384;
- channels and classes: the tfds builder's metadata (read without the data), a source's
  ``num_classes``, an image folder's class folders, the rest of the teachers' label space
  (``max(teachers[i].classes) + 1``) for the one source nothing else tells, ``data.num_classes``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import os
from unittest import mock

import jax
import numpy as np

from jka import models, run
from jka.check.sizes import key_name
from jka.data import ArrayDataset, load_split, scenes, sources
from jka.data.folders import IMAGENET_STATS
from jka.data.scenes import DENSE_DATASETS, DenseDataset, load_dense_split
from jka.errors import UserError
from jka.train.export import has_model, model_dir, read_info
from jka.train.teachers import Teacher, compute_dtype

# (height, width, channels, classes) of datasets a stand-in needs no tfds metadata for.
KNOWN = {"cifar10": (32, 32, 3, 10), "cifar100": (32, 32, 3, 100), "mnist": (28, 28, 1, 10)}
NYUV2_SIZE = (288, 384)  # how jka.data.scenes documents a prepared NYUv2 (H, W divisible by 32)
MAX_BYTES = 64 << 20     # a stand-in split holds at most this many bytes of images


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0][:120]


def tfds_meta(name: str, data_dir=None, image_key: str = "image", label_key: str = "label"):
    """(height or None, width or None, channels, classes) from tfds's metadata (nothing read), or None."""
    if name in KNOWN:
        return KNOWN[name]
    try:
        import tensorflow_datasets as tfds  # slow to import: only for a dataset jka does not know

        feats = tfds.builder(name, data_dir=data_dir).info.features
        h, w, c = feats[image_key].shape
        return h, w, int(c), int(feats[label_key].num_classes)
    except Exception:  # noqa: BLE001 - an unknown name, a feature of another kind: not known here
        return None


def random_split(shape, classes: int, batch: int, seed: int, mean, std) -> ArrayDataset:
    """Random uint8 images of ``shape`` (H, W, C), labels cycling over ``classes``: four batches and ten
    images a class (few-shot selections), at most ``MAX_BYTES``."""
    n = max(min(max(4 * batch, 10 * classes), MAX_BYTES // int(np.prod(shape))), batch, classes)
    rng = np.random.default_rng(seed)
    return ArrayDataset(rng.integers(0, 256, (n,) + tuple(shape), dtype=np.uint8),
                        (np.arange(n) % classes).astype(np.int32), int(classes), tuple(mean), tuple(std))


def _stats(name: str, channels: int):
    return sources.STATS.get(name, IMAGENET_STATS if channels == 3 else ((0.5,), (0.5,)))


def _size(image_size, h, w, what: str) -> tuple[int, int]:
    if image_size:
        return int(image_size), int(image_size)
    if h and w:
        return int(h), int(w)
    raise UserError(f"{what} is not on this machine and its image size is not fixed: jka check stands in for "
                    "it with random images of data.image_size; set data.image_size")


def label_space(cfg) -> int | None:
    """``data.num_classes``, else the classes the teachers cover (``max(teachers[i].classes) + 1``)."""
    if cfg.data.get("num_classes", None):
        return int(cfg.data.num_classes)
    known = [int(c) for t in cfg.get("teachers", ()) for c in (t.get("classes", None) or ())]
    return max(known) + 1 if known else None


def _source_classes(src, split: str):
    """The classes of a ``data.sources`` entry known without reading it, or None."""
    if src.get("num_classes", None):
        return int(src["num_classes"])
    if src.get("folder", None):
        root = os.path.join(src["folder"], src.get(f"{split}_split", split))
        if os.path.isdir(root):
            return sum(os.path.isdir(os.path.join(root, d)) for d in os.listdir(root)) or None
        return None
    meta = tfds_meta(src.get("name", ""), src.get("data_dir", None))
    return meta[3] if meta else None


@contextlib.contextmanager
def standing_in(cfg, notes: dict | None = None, memo: dict | None = None):
    """Inside: data of ``cfg`` not on this machine is random; each stand-in adds what it stands for and
    why to ``notes``; ``memo`` keeps what was loaded for a later context of the same run."""
    notes = {} if notes is None else notes
    memo = {} if memo is None else memo
    data, batch = cfg.data, int(cfg.data.get("batch_size", 32))
    real_tfds, real_stacked, real_npz = sources.tfds_split, sources.stacked_split, scenes._load_npz
    real_scenes = scenes.make_scenes
    seed = lambda split: 0 if "train" in str(split) else 1  # noqa: E731

    def remembered(key, load):
        key = json.dumps((batch,) + tuple(key), default=str)  # a stand-in holds a few batches
        if key not in memo:
            memo[key] = load()
        for what, why in memo[key][1]:
            notes.setdefault(what, why)
        return memo[key][0]

    def named(name, split, data_dir=None, image_size=None, image_key="image", label_key="label", in_memory=None):
        try:
            return real_tfds(name, split, data_dir, image_size, image_key, label_key, in_memory), []
        except UserError as err:
            meta = tfds_meta(name, data_dir, image_key, label_key)
            if meta is None and data.get("num_classes", None):  # a name only this run knows (benchmarks)
                # with data.channels (default 3) and, if given, data.mean / data.std
                meta = (None, None, int(data.get("channels", 3)), int(data.num_classes))
            if meta is None:
                raise UserError(f"jka check cannot stand in for the dataset {name!r}: {_first_line(err)}; tfds "
                                "does not know its shape either, so prepare it first") from None
            h, w = _size(image_size, meta[0], meta[1], f"the dataset {name!r}")
            stats = (tuple(data.mean), tuple(data.std)) if data.get("mean", None) else _stats(name, meta[2])
            return random_split((h, w, meta[2]), meta[3], batch, seed(split), *stats), [(name, _first_line(err))]

    def stacked(data_cfg, split):
        size = data_cfg.get("image_size", None)
        if not size:
            return real_stacked(data_cfg, split), []  # its own one-line error
        parts, missing = [], []
        for i, src in enumerate(data_cfg.sources):  # a tfds source stands in by itself (tfds_split below)
            try:
                parts.append(sources.load_source(src, split, int(size)))
            except UserError as err:
                parts.append(None)
                missing.append((i, _first_line(err)))
        counts = [p.num_classes if p is not None else _source_classes(s, split) for p, s in zip(parts, data_cfg.sources)]
        unknown = [i for i, n in enumerate(counts) if n is None]
        space, known = label_space(cfg), sum(n for n in counts if n)
        if len(unknown) == 1 and space and space > known:
            counts[unknown[0]] = space - known
        elif unknown:
            raise UserError(f"data.sources[{unknown[0]}] is not on this machine and nothing says how many classes "
                            f"it has; give data.sources[{unknown[0]}].num_classes (or teachers[i].classes)")
        stand = [p if p is not None else random_split((int(size), int(size), 3), n, batch, seed(split), *IMAGENET_STATS)
                 for p, n in zip(parts, counts)]
        return sources.stack_datasets(stand), [(f"data.sources[{i}]", e) for i, e in missing]

    def npz(path, num_classes):
        try:
            return real_npz(path, num_classes), []
        except UserError as err:
            h, w = (int(data.image_size),) * 2 if data.get("image_size", None) else NYUV2_SIZE
            n = max(min(2 * batch, MAX_BYTES // (h * w * 17)), batch)  # image, seg and depth: 17 bytes a pixel
            rng = np.random.default_rng(seed(os.path.basename(path)))
            ds = DenseDataset(rng.random((n, h, w, 3), np.float32), rng.integers(0, num_classes, (n, h, w), np.uint8),
                              rng.uniform(1.0, 10.0, (n, h, w)).astype(np.float32), int(num_classes))
            return ds, [(os.path.dirname(path), _first_line(err))]

    def tfds_split(*args, **kwargs):
        a = inspect.signature(real_tfds).bind(*args, **kwargs)
        a.apply_defaults()
        return remembered(("tfds",) + tuple(a.arguments.values()), lambda: named(*a.arguments.values()))

    patches = [mock.patch.object(sources, "tfds_split", tfds_split),
               mock.patch.object(sources, "stacked_split",
                                 lambda d, s: remembered(("stacked", d.to_dict(), s), lambda: stacked(d, s))),
               mock.patch.object(scenes, "_load_npz", lambda *a: remembered(("npz",) + a, lambda: npz(*a))),
               mock.patch.object(scenes, "make_scenes", lambda *a: remembered(("scenes",) + a, lambda: (real_scenes(*a), [])))]
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        yield notes


def data_shape(cfg) -> tuple[tuple, int]:
    """(image shape, classes) of ``cfg``'s training split (call inside :func:`standing_in`)."""
    ds = load_dense_split(cfg.data, "train") if cfg.data.get("name", None) in DENSE_DATASETS else \
        load_split(cfg.data, "train")
    return tuple(ds.image_shape), int(ds.num_classes)


def network_of(cfg, memo: dict | None = None) -> tuple[str, dict, list | None]:
    """(arch, kwargs, classes) of the model a config exports: its method built on stand-in data."""
    method = run.validate(cfg)
    if method.is_job:
        return cfg.model.name, dict(cfg.model.get("kwargs", {})), cfg.data.get("classes", None)
    with standing_in(cfg, memo=memo):
        shape, n = data_shape(cfg)
        program = method.program(cfg, random_teachers(cfg, None, shape, n, memo, draw=False)[0], None)
    kwargs = program.details.get("model_kwargs", cfg.model.get("kwargs", {}))
    return cfg.model.name, dict(kwargs), list(program.data.classes)


def _teacher_arch(i: int, spec, cfg, workdir: str | None, memo: dict | None) -> tuple[str, dict, list | None, str]:
    """(arch, kwargs, classes or None, where it was read) of ``teachers[i]``."""
    path = run.network_path(spec, workdir) if workdir else spec["workdir"]
    if has_model(path):
        info = read_info(os.path.join(model_dir(path), "model.json"))
        classes = info.get("classes", None) or list(range(int(info["num_classes"])))
        return info["arch"], dict(info.get("kwargs", {})), classes, f"exported model {path}"
    if spec.get("config", None) is not None:
        arch, kwargs, classes = network_of(run.network_config(spec, cfg), memo)
        return arch, kwargs, classes, "its config"
    if spec.get("arch", None):
        return spec["arch"], dict(spec.get("kwargs", {})), None, "teachers[i].arch"
    raise UserError(f"teachers[{i}] ({path}) has no exported model, no config and no 'arch': jka check cannot "
                    f"know its architecture; name it in the config as teachers[{i}].arch (e.g. 'wrn40_2')")


def random_like(shapes, seed: int = 0, params_only: bool = False, draw: bool = True):
    """Arrays of ``shapes`` drawn in numpy as an initialiser draws them: He-normal kernels, unit scales
    and variances, zeros elsewhere. ``params_only``: drawn only under a ``params`` key (a training
    state, whose optimizer moments carry the same names). Without ``draw``, zeros (not touched until
    used: all that tracing needs)."""
    rng = np.random.default_rng(100 + seed)

    def fill(path, s):
        keys = [key_name(p) for p in path]
        if not isinstance(s.dtype, np.dtype):
            raise TypeError(f"no stand-in for a {s.dtype} array")
        real = draw and (not params_only or "params" in keys)
        if real and keys[-1] in ("var", "scale"):
            return np.ones(s.shape, s.dtype)
        if real and keys[-1] in ("kernel", "embedding") and len(s.shape) > 1:
            fan_in = int(np.prod(s.shape[:-1]))
            return (rng.standard_normal(s.shape, np.float32) * np.sqrt(2.0 / fan_in)).astype(s.dtype)
        return np.zeros(s.shape, s.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


@functools.lru_cache(maxsize=64)
def _variable_shapes(arch: str, classes: int, kwargs: str, image_shape: tuple, dtype):
    module = models.create(arch, classes, dtype=dtype, **json.loads(kwargs))
    x = jax.ShapeDtypeStruct((1,) + image_shape, jax.numpy.float32)
    return jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x, train=False), x)


def random_teacher(arch: str, classes, kwargs: dict, image_shape, dtype, seed: int = 0, draw: bool = True) -> Teacher:
    """A teacher of ``arch`` over ``classes`` with random variables (:func:`random_like`): only their
    shapes are traced, nothing is compiled."""
    module = models.create(arch, len(classes), dtype=dtype, **kwargs)
    shapes = _variable_shapes(arch, len(classes), json.dumps(kwargs, sort_keys=True), tuple(image_shape), dtype)
    return Teacher(arch, module, dict(random_like(shapes, seed, draw=draw)), [int(c) for c in classes], dict(kwargs))


def random_teachers(cfg, workdir: str | None, image_shape, num_classes: int, memo: dict | None = None,
                    draw: bool = True) -> tuple[list[Teacher], list[str]]:
    """A random teacher of each configured architecture, and where each arch was read."""
    dtype, teachers, found = compute_dtype(cfg), [], []
    for i, spec in enumerate(cfg.get("teachers", ())):
        arch, kwargs, classes, source = _teacher_arch(i, spec, cfg, workdir, memo)
        classes = list(spec.get("classes", None) or classes or range(num_classes))
        teachers.append(random_teacher(arch, classes, kwargs, image_shape, dtype, i, draw))
        found.append(f"{arch} ({source})")
    return teachers, found


def with_stand_in_data(method):
    """``method`` built on stand-in data: a benchmark of the step alone (``data.name='synthetic'``)."""
    def build(ctx):
        with standing_in(ctx.cfg):
            return method.build(ctx)

    return dataclasses.replace(method, build=build)

