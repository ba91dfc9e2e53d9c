"""Where the data comes from: the embedded digits, any tfds image-classification dataset, or
several sources stacked (``data.sources``, :mod:`jka.data.folders`); optionally relabelled
(``data.relabel``, :mod:`jka.data.relabel`)."""
from __future__ import annotations

import dataclasses
import difflib
import os
from typing import Sequence

import jax
import numpy as np

from jka.data.core import ArrayDataset, select_classes
from jka.data.folders import IMAGENET_STATS, folder_split
from jka.data.records import RecordDataset, resize_uint8
from jka.data.relabel import relabel
from jka.data.scenes import DENSE_DATASETS
from jka.errors import ConfigError, UserError

# The fixed split of scikit-learn's 1,797 handwritten digits: 30 % stratified test split. It is
# shipped in digits.npz (images, labels and the split's rows, written by tools/make_digits_npz.py
# with scikit-learn's train_test_split and these two values), so reading it needs no scikit-learn.
DIGITS_TEST_FRACTION = 0.3
DIGITS_SPLIT_SEED = 0
DIGITS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.npz")

# Per-channel statistics used to normalise inputs inside the step.
STATS = {
    "digits": ((0.3059,), (0.3782,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def free_memory_bytes() -> int | None:
    """This host's available memory (Linux's MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None


def check_fits(nbytes: int, what: str, fix: str) -> None:
    """Refuse (one line) an array of ``nbytes`` that would not fit in this host's free memory: the
    allocation would abort the process inside XLA instead."""
    free = free_memory_bytes()
    if free is not None and nbytes > 0.9 * free:
        raise ConfigError(f"{what} would take {nbytes / 1e9:.3g} GB, more than the {free / 1e9:.3g} GB this host has "
                          f"free; {fix}")


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of float images (N, H, W, C) to ``size`` × ``size``."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    n, _, _, c = images.shape
    check_fits(2 * n * size * size * c * 4, f"{n} images resized to data.image_size={size}",
               "lower data.image_size")
    return np.asarray(jax.image.resize(images.astype(np.float32), (n, size, size, c), "bilinear", antialias=True))


def digits_arrays() -> dict[str, np.ndarray]:
    """The shipped digits: ``images`` (1797, 8, 8) uint8 in 0..16, ``labels`` (1797,) uint8, and
    the rows of the ``train`` (1257) and ``test`` (540) splits (jka/data/digits_NOTICE.txt)."""
    with np.load(DIGITS_FILE, allow_pickle=False) as f:
        return {k: f[k] for k in ("images", "labels", "train", "test")}


def digits(split: str, image_size: int = 8) -> ArrayDataset:
    """scikit-learn's handwritten digits (real 8×8 scans, 10 classes), float32 in [0, 1]."""
    if split not in ("train", "test"):
        raise ConfigError(f"digits has splits 'train' and 'test', not {split!r}")
    d = digits_arrays()
    rows = d[split]
    x = (d["images"][rows].astype(np.float32) / 16.0)[..., None]
    y = d["labels"][rows].astype(np.int64)
    return ArrayDataset(resize(x, image_size), y, 10, *STATS["digits"])


def _tfds_missing_message(name: str, split: str, data_dir, err: Exception) -> str:
    where = data_dir or "~/tensorflow_datasets (or $TFDS_DATA_DIR)"
    return (f"tfds dataset {name!r} split {split!r} is not prepared in {where} ({type(err).__name__}). "
            f"Prepare it once on a machine with internet: `pip install tensorflow && tfds build {name} "
            f"--data_dir DIR` (or copy a prepared DIR here), then set data.data_dir=DIR")


def _tfds(name: str, key: str):
    """The ``tensorflow_datasets`` module (slow to import: only when a tfds dataset is named); an
    optional dependency, so its absence is one line that says what to install."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ConfigError(f"{key}={name!r} is read through tensorflow-datasets, which is not installed: "
                          "pip install 'jka[tfds]' (the embedded 'digits' need nothing more)") from None
    return tfds


def check_tfds_name(name: str, data_dir=None, key: str = "data.name") -> None:
    """Refuse a dataset name tfds does not know (no builder of that name, nothing of that name
    prepared in ``data_dir``) with its close matches, before anything is read or written."""
    tfds = _tfds(name, key)

    base = str(name).split(":")[0].split("/")[0]  # "cifar10:3.0.2", "imagenet2012_subset/10pct"
    known = tfds.list_builders(with_community_datasets=False)
    if base in known or (tfds.core.Path(data_dir or tfds.core.constants.get_default_data_dir()) / base).exists():
        return
    close = difflib.get_close_matches(base, known, n=5)
    hint = f"close matches: {', '.join(close)}" if close else "no tfds dataset has a similar name"
    raise ConfigError(f"{key}={name!r} is not a dataset tfds knows ({hint}); use 'digits', a tfds name "
                      "(tfds.list_builders()) or one prepared in data.data_dir")


def check_names(data_cfg) -> None:
    """The tfds names of ``data_cfg`` (``name``, or each of ``sources``) checked by :func:`check_tfds_name`."""
    sources = data_cfg.get("sources", None)
    if sources:
        for i, src in enumerate(sources):
            if not src.get("folder", None) and src.get("name", None):
                check_tfds_name(src["name"], src.get("data_dir", None), f"data.sources[{i}].name")
    elif data_cfg.get("name", "digits") not in ("digits",) + DENSE_DATASETS:
        check_tfds_name(data_cfg.name, data_cfg.get("data_dir", None))


# data.in_memory=None ("auto") keeps a split in host memory when its images take at most this many bytes.
AUTO_IN_MEMORY_BYTES = 4 << 30


def tfds_split(name: str, split: str, data_dir: str | None = None, image_size: int | None = None,
               image_key: str = "image", label_key: str = "label", in_memory=None):
    """A tfds image-classification split through ``tfds.data_source`` (array_record random access, no
    TensorFlow); images stay uint8 and become float on the device. ``in_memory``: True loads the split
    into host memory (an :class:`ArrayDataset`); False reads rows on demand (a
    :class:`jka.data.records.RecordDataset`: each process reads only the rows of its slices); None (or
    "auto") loads it when its images take at most ``AUTO_IN_MEMORY_BYTES``."""
    tfds = _tfds(name, "data.name")
    if in_memory not in (True, False, None, "auto"):
        raise ConfigError(f"data.in_memory must be True, False or None (auto), not {in_memory!r}")
    check_tfds_name(name, data_dir)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        src = tfds.data_source(name, split=split, data_dir=data_dir)
    except Exception as err:  # tfds raises several types for "not there"
        if isinstance(err, (KeyError, ValueError)) and "not found" in str(err).lower() and "split" in str(err).lower():
            raise ConfigError(f"tfds dataset {name!r} has no split {split!r}: {err}") from None
        raise UserError(_tfds_missing_message(name, split, data_dir, err)) from None
    n = len(src)
    if n == 0:
        raise UserError(_tfds_missing_message(name, split, data_dir, RuntimeError("empty split")))
    feats = builder.info.features
    if image_key not in feats or label_key not in feats:
        raise ConfigError(
            f"tfds dataset {name!r} has features {sorted(feats.keys())}; set data.image_key / data.label_key")
    first = resize_uint8(np.asarray(src[0][image_key])[None], image_size)[0]
    if first.ndim != 3 or first.shape[-1] not in (1, 3):
        raise ConfigError(f"tfds dataset {name!r} images have shape {first.shape}; expected H×W×1 or H×W×3")
    mean, std = STATS.get(name, IMAGENET_STATS if first.shape[-1] == 3 else ((0.5,), (0.5,)))
    ds = RecordDataset(src, name=name, split=split, image_key=image_key, label_key=label_key,
                       num_classes=feats[label_key].num_classes, image_shape=first.shape, mean=mean, std=std,
                       image_size=image_size)
    if in_memory in (None, "auto"):
        in_memory = n * first.nbytes <= AUTO_IN_MEMORY_BYTES
    return ArrayDataset(ds.images, ds.labels, ds.num_classes, mean, std) if in_memory else ds


def load_source(src, split: str, image_size: int) -> ArrayDataset:
    """One entry of ``data.sources``: ``dict(name=<tfds name>, data_dir=...)`` or ``dict(folder=DIR)``."""
    split_name = src.get(f"{split}_split", split)
    if src.get("folder", None):
        return folder_split(src["folder"], split_name, image_size)
    if not src.get("name", None):
        raise ConfigError("each data.sources[i] needs 'name' (a tfds dataset) or 'folder' (an image folder)")
    return tfds_split(src["name"], split_name, src.get("data_dir", None), image_size, in_memory=True)


def stack_datasets(parts: Sequence[ArrayDataset]) -> ArrayDataset:
    """Concatenate datasets; dataset i's labels are offset by the class counts of datasets < i."""
    offsets = np.cumsum([0] + [p.num_classes for p in parts])
    return ArrayDataset(np.concatenate([p.images for p in parts]),
                        np.concatenate([p.labels + o for p, o in zip(parts, offsets)]),
                        int(offsets[-1]), parts[0].mean, parts[0].std)


def stacked_split(data_cfg, split: str) -> ArrayDataset:
    """The ``data.sources`` of ``data_cfg`` stacked, every image resized to ``data.image_size``."""
    size = data_cfg.get("image_size", None)
    if not size:
        raise ConfigError("data.sources needs data.image_size (every source is resized to it)")
    return stack_datasets([load_source(s, split, int(size)) for s in data_cfg.sources])


def load_split(data_cfg, split: str, classes=None) -> ArrayDataset:
    """The dataset of ``data_cfg`` (``name``: ``digits`` or a tfds name; or ``sources``), relabelled
    by ``data.relabel`` when set, restricted to ``classes``."""
    size = data_cfg.get("image_size", None)
    if data_cfg.get("sources", None):
        ds = stacked_split(data_cfg, split)
    elif data_cfg.name == "digits":
        ds = digits(split, size or 8)
    else:
        split_name = data_cfg.get(f"{split}_split", split)
        ds = tfds_split(data_cfg.name, split_name, data_cfg.get("data_dir", None), size,
                        data_cfg.get("image_key", "image"), data_cfg.get("label_key", "label"),
                        data_cfg.get("in_memory", None))
    labeling = data_cfg.get("relabel", None)
    if labeling is not None:
        if data_cfg.get("classes", None) is not None:
            raise ConfigError(f"data.relabel={labeling!r} uses every image; leave data.classes=None")
        labels, k = relabel(labeling, ds.labels, split, int(data_cfg.get("relabel_seed", 0)))
        ds = dataclasses.replace(ds, labels=labels, num_classes=k)
    return select_classes(ds, classes)
