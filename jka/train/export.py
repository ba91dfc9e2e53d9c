"""Exported models: what other runs consume (teachers, converted PyTorch checkpoints, students).

``DIR/model.json`` (architecture, number of classes, the dataset classes it predicts, input
statistics) and ``DIR/variables.msgpack`` (``params`` and ``batch_stats``); a training workdir
holds its student's in ``WORKDIR/model``.
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
from flax import serialization

from jka.errors import UserError


def to_host(tree):
    """NumPy copies of every leaf. Arrays split over several processes (``train.shard.state`` on a
    multi-host mesh) are gathered first, which is a collective: call it on every process."""

    def one(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(jax.device_get(a))

    return jax.tree.map(one, tree)


def export_model(directory: str, arch: str, num_classes: int, variables: dict, **meta) -> None:
    """Write ``model.json`` and ``variables.msgpack`` to ``directory``."""
    os.makedirs(directory, exist_ok=True)
    host = to_host(dict(variables))
    with open(os.path.join(directory, "variables.msgpack"), "wb") as f:
        f.write(serialization.msgpack_serialize(host))
    info = {"arch": arch, "num_classes": int(num_classes), **meta}
    with open(os.path.join(directory, "model.json"), "w") as f:
        json.dump(info, f, indent=2)


def model_dir(path: str) -> str:
    """``path`` itself if it holds model.json, else ``path/model`` (a training workdir)."""
    if os.path.isfile(os.path.join(path, "model.json")):
        return path
    return os.path.join(path, "model")


def load_model(path: str) -> tuple[dict, dict[str, Any]]:
    """(variables, info) of an exported model; ``path`` is the model dir or a training workdir."""
    d = model_dir(path)
    meta_path = os.path.join(d, "model.json")
    if not os.path.isfile(meta_path):
        raise UserError(
            f"no exported model at {path!r} (expected {meta_path}); train it first with "
            "`jka train CONFIG --workdir DIR` or convert one with `jka convert`")
    with open(meta_path) as f:
        info = json.load(f)
    with open(os.path.join(d, "variables.msgpack"), "rb") as f:
        variables = serialization.msgpack_restore(f.read())
    return variables, info
