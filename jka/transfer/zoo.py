"""A zoo of trained networks (exported jka models) and probe images to compare them on."""
from __future__ import annotations

import os
import zipfile

import ml_collections
import numpy as np

from jka.data import load_split
from jka.errors import UserError
from jka.transfer.attribution import ZooModel, fit_probe
from jka.train.export import load_classifier

PROBE_KEYS = ("images", "image")  # the array an .npz probe file names (else its only array)
SAVE_HINT = "save the images with np.save(path, images) as (N, H, W[, C]) uint8 0-255 or float in [0, 1]"


def zoo_model(path: str, name: str | None = None) -> ZooModel:
    """Load the exported model at ``path`` (a model dir or a training workdir)."""
    module, variables, info = load_classifier(path, what="zoo model")
    shape = tuple(info["image_shape"]) if info.get("image_shape") else None
    return ZooModel(name or os.path.basename(os.path.normpath(path)), info["arch"], module, variables,
                    tuple(info.get("mean", (0.0,))), tuple(info.get("std", (1.0,))), shape, info)


def find_models(directory: str, max_depth: int = 3) -> list[str]:
    """Training workdirs / model dirs under ``directory`` holding an exported model, sorted."""
    found = []
    base_depth = directory.rstrip(os.sep).count(os.sep)
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        if root.rstrip(os.sep).count(os.sep) - base_depth > max_depth:
            dirs[:] = []
            continue
        if "model.json" in files:
            found.append(os.path.dirname(root) if os.path.basename(root) == "model" else root)
            dirs[:] = []
    return sorted(set(found))


def load_zoo_dir(directory: str) -> list[ZooModel]:
    if not os.path.isdir(directory):
        raise UserError(f"zoo {directory!r} is neither a directory nor a .py config; pass one of them")
    paths = find_models(directory)
    if len(paths) < 2:
        raise UserError(f"zoo {directory!r} holds {len(paths)} exported models; a zoo needs at least 2 "
                        "(subdirectories with model.json, as written by `jka train`)")
    return [zoo_model(p, os.path.relpath(p, directory).replace(os.sep, "/")) for p in paths]


def _read_probe_file(path: str) -> np.ndarray:
    """The image array of a .npy file, or of an .npz file (under one of ``PROBE_KEYS``, or its only array)."""
    if not os.path.isfile(path):
        raise UserError(f"probe file {path!r} does not exist; {SAVE_HINT}")
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files"):
            return data
        with data:
            keys = [k for k in PROBE_KEYS if k in data.files] or (data.files if len(data.files) == 1 else [])
            if not keys:
                raise UserError(f"probe file {path!r} holds the arrays {data.files or 'none'} but no "
                                f"{' or '.join(map(repr, PROBE_KEYS))}; save them as np.savez(path, images=images)")
            return data[keys[0]]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:  # truncated, pickled objects, not numpy
        raise UserError(f"cannot read probe file {path!r} ({type(err).__name__}: {err}); {SAVE_HINT}") from None


def _checked_probe(images: np.ndarray, where: str) -> np.ndarray:
    """``images`` as (N, H, W, C) float32 in [0, 1], refusing what is no such image batch."""
    if images.dtype.kind not in "uif":
        raise UserError(f"probe {where} holds {images.dtype} values, not numbers; {SAVE_HINT}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise UserError(f"probe images must be (N, H, W) or (N, H, W, C); {where} has shape {images.shape}")
    if images.size == 0:
        raise UserError(f"probe {where} holds no images (shape {images.shape}); {SAVE_HINT}")
    bad = int(np.sum(~np.isfinite(images)))
    if bad:
        raise UserError(f"probe {where} holds {bad} NaN/inf values; {SAVE_HINT}")
    top = 1.0 if images.dtype.kind == "f" else 255.0  # integers are 0-255 pixel values
    lo, hi = images.min(), images.max()
    if lo < 0 or hi > top:
        raise UserError(f"probe {where} values span [{lo}, {hi}], outside [0, {top:g}]; {SAVE_HINT}")
    if lo == hi:  # blank images: every attribution map is the same, every distance 0 (or NaN)
        raise UserError(f"probe {where} is constant (every value is {lo}): the zoo cannot be told apart on it; "
                        "pass real images")
    if len(images) > 1 and np.array_equal(images.min(axis=0), images.max(axis=0)):
        raise UserError(f"probe {where} holds {len(images)} copies of one image: pass varied images")
    return images.astype(np.float32) / top


def load_probe(spec: str, n: int | None = None, seed: int = 0) -> np.ndarray:
    """Unlabelled probe images (N, H, W, C) float32 in [0, 1], ``n`` of them (a seeded subset): ``digits``,
    ``digits:test`` or a ``.npy``/``.npz`` file of images (N, H, W[, C]), 0..255 integers or [0, 1] floats."""
    if n is not None and n < 1:
        raise UserError(f"the probe size must be at least 1 image, not {n}")
    name, _, split = spec.partition(":")
    if name == "digits":
        images = load_split(ml_collections.ConfigDict(dict(name="digits", image_size=8)), split or "train").images
    elif spec.endswith((".npy", ".npz")):
        images = _read_probe_file(spec)
    else:
        raise UserError(f"probe {spec!r} is not understood; use 'digits', 'digits:test' or a .npy/.npz image file")
    images = _checked_probe(np.asarray(images), repr(spec))
    if n is not None and n < len(images):
        images = images[np.sort(np.random.default_rng(seed).permutation(len(images))[:n])]
    return images


def check_probe(zoo, images: np.ndarray) -> None:
    """Refuse probe images that some zoo model cannot take (channels), before any model runs."""
    for model in zoo:
        fit_probe(model, images[:1])
