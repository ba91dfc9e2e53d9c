"""Where the data comes from: the embedded digits, or any tfds image-classification dataset."""
from __future__ import annotations

import numpy as np

from jka.data.core import ArrayDataset, select_classes
from jka.errors import ConfigError, UserError

# The fixed split of scikit-learn's 1,797 handwritten digits: 30 % stratified test split.
DIGITS_TEST_FRACTION = 0.3
DIGITS_SPLIT_SEED = 0

# Per-channel statistics used to normalise inputs inside the step.
STATS = {
    "digits": ((0.3059,), (0.3782,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of float images (N, H, W, C) to ``size`` × ``size``."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    import jax

    out = jax.image.resize(images.astype(np.float32), (images.shape[0], size, size, images.shape[3]),
                           "bilinear", antialias=True)
    return np.asarray(out)


def digits(split: str, image_size: int = 8) -> ArrayDataset:
    """scikit-learn's handwritten digits (real 8×8 scans, 10 classes), float32 in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=y)
    if split not in ("train", "test"):
        raise ConfigError(f"digits has splits 'train' and 'test', not {split!r}")
    x, y = (x_tr, y_tr) if split == "train" else (x_te, y_te)
    mean, std = STATS["digits"]
    return ArrayDataset(resize(x, image_size), y, 10, mean, std)


def _tfds_missing_message(name: str, split: str, data_dir, err: Exception) -> str:
    where = data_dir or "~/tensorflow_datasets (or $TFDS_DATA_DIR)"
    return (f"tfds dataset {name!r} split {split!r} is not prepared in {where} ({type(err).__name__}). "
            f"Prepare it once on a machine with internet: `pip install tensorflow && tfds build {name} "
            f"--data_dir DIR` (or copy a prepared DIR here), then set data.data_dir=DIR")


# data.in_memory=None ("auto") keeps a split in host memory when its images take at most this many bytes.
AUTO_IN_MEMORY_BYTES = 4 << 30


def tfds_split(name: str, split: str, data_dir: str | None = None, image_size: int | None = None,
               image_key: str = "image", label_key: str = "label", in_memory=None):
    """A tfds image-classification split through ``tfds.data_source`` (array_record random access).

    TensorFlow is not needed. Images stay uint8 and become float on the device. ``in_memory``:
    True loads the split into host memory (an :class:`ArrayDataset`); False reads rows on demand
    (a :class:`jka.data.records.RecordDataset`: each process reads only the rows of its slices);
    None (or "auto") loads it when its images take at most ``AUTO_IN_MEMORY_BYTES``.
    """
    import tensorflow_datasets as tfds

    from jka.data.records import RecordDataset, resize_uint8

    if in_memory not in (True, False, None, "auto"):
        raise ConfigError(f"data.in_memory must be True, False or None (auto), not {in_memory!r}")
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
    if not in_memory:
        return ds
    return ArrayDataset(ds.images, ds.labels, ds.num_classes, mean, std)


def load_split(data_cfg, split: str, classes=None) -> ArrayDataset:
    """The dataset named by ``data_cfg.name`` (``digits`` or a tfds name), restricted to ``classes``."""
    name = data_cfg.name
    size = data_cfg.get("image_size", None)
    if name == "digits":
        ds = digits(split, size or 8)
    else:
        split_name = data_cfg.get(f"{split}_split", split)
        ds = tfds_split(name, split_name, data_cfg.get("data_dir", None), size,
                        data_cfg.get("image_key", "image"), data_cfg.get("label_key", "label"),
                        data_cfg.get("in_memory", None))
    return select_classes(ds, classes)


def load_train_test(data_cfg, classes=None) -> tuple[ArrayDataset, ArrayDataset]:
    return load_split(data_cfg, "train", classes), load_split(data_cfg, "test", classes)
