"""Frozen teachers: exported models loaded for a run (:mod:`jka.run` finds or trains them)."""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jka import paths
from jka.errors import ConfigError, UserError, unknown_choice
from jka.train.export import load_classifier, variables_mismatch

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(cfg):
    """The compute dtype of ``cfg.train.dtype`` (parameters and BN statistics stay float32)."""
    name = cfg.train.get("dtype", "float32")
    if name not in DTYPES:
        raise unknown_choice("train.dtype", name, DTYPES)
    return DTYPES[name]


@dataclasses.dataclass
class Teacher:
    """A frozen network: its module, its variables, and the dataset classes of its outputs."""

    arch: str
    module: Any
    variables: dict
    classes: list[int]
    kwargs: dict = dataclasses.field(default_factory=dict)
    path: str = ""  # the exported model it was loaded from
    normalisation: dict = dataclasses.field(default_factory=dict)  # model.json's mean/std, where it says

    def __call__(self, variables, x):
        """Teachers always run in inference mode and never receive gradients."""
        logits, feats = self.module.apply(jax.lax.stop_gradient(variables), x, train=False)
        return jax.lax.stop_gradient(logits), jax.tree.map(jax.lax.stop_gradient, feats)


def load_teacher(path: str, classes: Sequence[int] | None = None, dtype=jnp.float32) -> Teacher:
    """The exported model at ``path`` as a teacher over ``classes`` (default: its own, else
    ``0..num_classes-1``)."""
    module, variables, info = load_classifier(path, dtype, what="teacher")
    classes = classes or info.get("classes") or list(range(info["num_classes"]))
    classes = [int(c) for c in classes]
    if len(classes) != info["num_classes"]:
        raise ConfigError(f"teacher {path!r} has {info['num_classes']} outputs but classes lists {len(classes)}")
    return Teacher(info["arch"], module, variables, classes, info.get("kwargs", {}), paths.absolute(path),
                   {k: info[k] for k in ("mean", "std") if k in info})


def normalisation_mismatch(teacher: Teacher, mean: Sequence[float], std: Sequence[float],
                           tolerance: float = 0.01) -> str | None:
    """Why ``teacher``'s recorded input normalisation is not the run's ``(mean, std)`` (beyond
    ``tolerance`` per channel), or None where it is, or where its model.json does not say."""
    own = teacher.normalisation
    if "mean" not in own or "std" not in own:
        return None
    pairs = list(zip(own["mean"], mean)) + list(zip(own["std"], std))
    if len(own["mean"]) == len(mean) and len(own["std"]) == len(std) and all(
            abs(float(a) - float(b)) <= tolerance for a, b in pairs):
        return None
    def show(v):
        return "(" + ", ".join(f"{float(x):.4g}" for x in v) + ")"
    return (f"teacher {teacher.path} was trained on inputs normalised with mean {show(own['mean'])}, std "
            f"{show(own['std'])}, but this run's data uses mean {show(mean)}, std {show(std)}: its outputs may be "
            "off (was it converted with the right --mean/--std, and trained on this dataset?)")


def check_fit(teacher: Teacher, image_shape: Sequence[int]) -> None:
    """Refuse a teacher whose variables do not fit this run's (H, W, C) images, before any compile."""
    h, w, c = (int(s) for s in image_shape)
    problem = variables_mismatch(teacher.module, teacher.variables, (h, w, c),
                                 f"this run's {c}-channel {h}x{w} images need")
    if problem:
        raise UserError(f"teacher {teacher.path}: {problem}; train or convert the teacher for this data")
