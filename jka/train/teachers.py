"""Frozen teachers from exported models, trained first from their config when missing."""
from __future__ import annotations

import os

import ml_collections

from jka import models
from jka.algorithms.base import Teacher, compute_dtype
from jka.errors import ConfigError
from jka.train.checkpoint import load_model, model_dir


def teacher_workdir(spec, workdir: str) -> str:
    path = spec.get("workdir", None)
    if not path:
        raise ConfigError("each teachers[i] needs a 'workdir' (an exported model or where to train it)")
    return path if os.path.isabs(path) else os.path.join(workdir, path)


def ensure_trained(spec, workdir: str, progress: bool = True) -> str:
    """Train the teacher from ``spec.config`` (a path or a ConfigDict) if it has no exported model."""
    from jka import config as config_lib
    from jka.train.loop import train

    path = teacher_workdir(spec, workdir)
    if os.path.isfile(os.path.join(model_dir(path), "model.json")):
        return path
    cfg = spec.get("config", None)
    if cfg is None:
        raise ConfigError(
            f"teacher at {path!r} has no exported model and no 'config' to train it; "
            "train it first or give teachers[i].config")
    if isinstance(cfg, str):
        cfg = config_lib.load(cfg, spec.get("overrides", ()))
    else:
        cfg = ml_collections.ConfigDict(cfg.to_dict())
    cfg.train.progress = progress and cfg.train.get("progress", True)
    train(cfg, path)
    return path


def load_teachers(cfg, workdir: str) -> list[Teacher]:
    out = []
    for spec in cfg.get("teachers", ()):
        path = ensure_trained(spec, workdir, cfg.train.get("progress", True))
        variables, info = load_model(path)
        classes = spec.get("classes", None) or info.get("classes") or list(range(info["num_classes"]))
        classes = [int(c) for c in classes]
        if len(classes) != info["num_classes"]:
            raise ConfigError(
                f"teacher {path!r} has {info['num_classes']} outputs but classes lists {len(classes)}")
        module = models.create(info["arch"], info["num_classes"], dtype=compute_dtype(cfg),
                               **info.get("kwargs", {}))
        out.append(Teacher(info["arch"], module, variables, classes, info.get("kwargs", {})))
    return out
