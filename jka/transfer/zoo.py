"""A zoo of trained networks (exported jka models) and probe images to compare them on."""
from __future__ import annotations

import os

import ml_collections
import numpy as np

from jka import models
from jka.data import load_split
from jka.errors import UserError
from jka.transfer.attribution import ZooModel
from jka.train.export import load_model


def zoo_model(path: str, name: str | None = None) -> ZooModel:
    """Load the exported model at ``path`` (a model dir or a training workdir)."""
    variables, info = load_model(path)
    module = models.create(info["arch"], info["num_classes"], **info.get("kwargs", {}))
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
            parent = os.path.dirname(root) if os.path.basename(root) == "model" else root
            found.append(parent)
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


def load_probe(spec: str, n: int | None = None, seed: int = 0) -> np.ndarray:
    """Unlabelled probe images (N, H, W, C) float32 in [0, 1].

    ``digits`` / ``digits:test`` (a seeded random subset of that split) or a ``.npy``/``.npz`` file of
    images (N, H, W) or (N, H, W, C), uint8 or float in [0, 1].
    """
    if spec.split(":")[0] == "digits":
        split = spec.split(":", 1)[1] if ":" in spec else "train"
        images = load_split(ml_collections.ConfigDict(dict(name="digits", image_size=8)), split).images
    elif spec.endswith((".npy", ".npz")):
        if not os.path.isfile(spec):
            raise UserError(f"probe file {spec!r} does not exist")
        data = np.load(spec)
        images = data[data.files[0]] if hasattr(data, "files") else data
    else:
        raise UserError(f"probe {spec!r} is not understood; use 'digits', 'digits:test' or a .npy/.npz image file")
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise UserError(f"probe images must be (N, H, W) or (N, H, W, C); got shape {images.shape}")
    images = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
    if n is not None and n < len(images):
        images = images[np.sort(np.random.default_rng(seed).permutation(len(images))[:n])]
    return images
