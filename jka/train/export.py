"""Exported models, what other runs consume: ``DIR/model.json`` (architecture, number of classes,
the dataset classes it predicts, input statistics) and ``DIR/variables.msgpack`` (``params`` and
``batch_stats``); a training workdir holds its student's in ``WORKDIR/model``.

:func:`load_model` refuses a damaged export with one line naming the file: a ``model.json`` whose
fields do not fit, or variables that are not the architecture's, leaf for leaf.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from jka import models, paths
from jka.errors import ConfigError, UserError, unknown_choice

# Exported networks that are not zoo classifiers: PyTorch generators (`jka convert generator`,
# jka.convert.families), the data-free GAN generator and the data-free amalgamation's phase exports.
# They are read with the generic checks only.
OTHER_ARCHS = ("generator", "large_generator", "dcgan_generator", "dfa_group_stack_generator", "dfa_dual_blocks")
REEXPORT = "re-export the model (train it again, or run `jka convert` again)"
COLLECTIONS = ("params", "batch_stats")  # what an exported classifier's variables hold


def to_host(tree):
    """NumPy copies of every leaf; arrays split over processes are gathered (call it on every process)."""

    def one(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(jax.device_get(a))

    return jax.tree.map(one, tree)


def export_model(directory: str, arch: str, num_classes: int, variables: dict, **meta) -> None:
    """Write ``model.json`` and ``variables.msgpack`` to ``directory`` (model.json last)."""
    paths.makedirs(directory)  # each file whole or not at all: an interrupted export leaves the previous one
    paths.write(os.path.join(directory, "variables.msgpack"), serialization.msgpack_serialize(to_host(dict(variables))))
    info = {"arch": arch, "num_classes": int(num_classes), **meta}
    paths.write_json(os.path.join(directory, "model.json"), info)


def has_model(path: str) -> bool:
    """Whether ``path`` (a model dir or a training workdir) holds an exported model."""
    return paths.isfile(os.path.join(model_dir(path), "model.json"))


def model_dir(path: str) -> str:
    """``path`` itself if it holds model.json, else ``path/model`` (a training workdir)."""
    here, inner = os.path.join(path, "model.json"), os.path.join(path, "model", "model.json")
    if paths.isfile(here) and paths.isfile(inner):
        raise UserError(f"{path!r} holds two exported models, {here} and {inner}, and either could be meant; "
                        "remove (or move away) the one you do not want")
    return path if paths.isfile(here) else os.path.join(path, "model")


def _whole(value, least: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _shape(shape) -> str:
    return str(tuple(shape)).replace(" ", "")


def leaf_shapes(tree, prefix: str = "") -> dict[str, tuple]:
    """``{'params/conv1/kernel': (3, 3, 1, 32), ...}`` of a tree of arrays (or of orbax metadata)."""
    def name(key):
        return str(getattr(key, "key", getattr(key, "idx", key)))

    flat = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))
    return {"/".join([*filter(None, [prefix]), *map(name, path)]): tuple(getattr(leaf, "shape", np.shape(leaf)))
            for path, leaf in flat}


def first_difference(have: dict, need: dict, needs: str, place: str = "the architecture") -> str | None:
    """The first key of two ``leaf_shapes`` maps that is missing, extra or of another shape, in words;
    ``needs`` completes the sentence."""
    for key in [*need, *(k for k in have if k not in need)]:
        if key not in have:
            return f"{key} is missing but {needs} one of shape {_shape(need[key])}"
        if key not in need:
            return f"{key} (shape {_shape(have[key])}) has no place in {place}"
        if have[key] != need[key]:
            return f"{key} has shape {_shape(have[key])} but {needs} {_shape(need[key])}"
    return None


def variables_mismatch(module, variables: dict, image_shape, needs: str) -> str | None:
    """The first way ``variables`` differ from what ``module`` makes for one ``image_shape`` (H, W, C)
    image, or None; ``needs`` completes the sentence (``"this run's 1-channel 8x8 images need"``)."""
    method = "init_all" if hasattr(module, "init_all") else None  # touches every branch (branchy_segnet)
    x = jnp.zeros((1, *image_shape), jnp.float32)
    try:
        want = jax.eval_shape(lambda: module.init(jax.random.key(0), x, train=False, method=method))
    except ValueError as err:  # an input the module refuses outright (a ViT's image size); jax appends its notes
        return str(err).splitlines()[0]
    for collection in COLLECTIONS:
        problem = first_difference(leaf_shapes(variables.get(collection, {}), collection),
                                   leaf_shapes(want.get(collection, {}), collection), needs)
        if problem:
            return problem
    return None


def _damaged(where: str, problem: str) -> UserError:
    return UserError(f"{where}: {problem}; {REEXPORT}")


def read_info(path: str) -> dict:
    """model.json at ``path``, checked field by field."""
    try:
        info = paths.read_json(path)
    except ValueError as err:  # not JSON, or not UTF-8
        raise _damaged(path, f"not valid JSON ({err})") from None
    if not isinstance(info, dict):
        raise _damaged(path, f"holds a JSON {type(info).__name__}, not an object")
    if "arch" not in info:
        raise _damaged(path, "has no 'arch'")
    arch, n = info["arch"], info.get("num_classes")
    if not isinstance(arch, str) or arch not in (*models.available(), *OTHER_ARCHS):
        raise _damaged(path, str(unknown_choice("arch", arch, (*models.available(), *OTHER_ARCHS))))
    classifier = arch in models.available()
    if not _whole(n, 1 if classifier else 0):
        raise _damaged(path, f"num_classes must be a {'positive' if classifier else 'non-negative'} "
                             f"whole number, not {n!r}")
    classes = info.get("classes")
    if classes is not None and not (isinstance(classes, list) and len(classes) == n
                                    and all(_whole(c) for c in classes) and len(set(classes)) == n):
        raise _damaged(path, f"classes must list {n} distinct non-negative class indices, not {classes!r}")
    shape = info.get("image_shape")
    if shape is not None and not (isinstance(shape, list) and len(shape) == 3 and all(_whole(s, 1) for s in shape)):
        raise _damaged(path, f"image_shape must be [height, width, channels] of positive whole numbers, not {shape!r}")
    if classifier:
        try:
            models.check_kwargs(arch, info.get("kwargs", {}), n, where=f"{path}: kwargs")
        except ConfigError as err:
            raise UserError(f"{err}; {REEXPORT}") from None
    return info


def _read_variables(path: str) -> dict:
    if not paths.isfile(path):
        raise _damaged(path, "is missing")
    data = paths.read_bytes(path)
    if not data:
        raise _damaged(path, "is empty")
    try:
        variables = serialization.msgpack_restore(data)
    except Exception as err:  # noqa: BLE001 - truncated or foreign bytes fail in many ways
        raise _damaged(path, f"is not a readable msgpack file ({type(err).__name__}: {err})") from None
    if not isinstance(variables, dict):
        raise _damaged(path, f"holds a {type(variables).__name__}, not a dict of variable collections")
    return variables


def load_model(path: str) -> tuple[dict, dict[str, Any]]:
    """(variables, info) of an exported model; ``path`` is the model dir or a training workdir."""
    d = model_dir(path)
    meta_path, vars_path = os.path.join(d, "model.json"), os.path.join(d, "variables.msgpack")
    if not paths.isfile(meta_path):
        raise UserError(
            f"no exported model at {path!r} (expected {meta_path}); train it first with "
            "`jka train CONFIG --workdir DIR` or convert one with `jka convert`")
    info = read_info(meta_path)
    variables = _read_variables(vars_path)
    broken = [jax.tree_util.keystr(k) for k, v in jax.tree_util.tree_leaves_with_path(variables)
              if np.issubdtype(np.asarray(v).dtype, np.floating) and not np.isfinite(np.asarray(v, np.float32)).all()]
    if broken:
        raise _damaged(vars_path, f"holds NaN or inf values in {len(broken)} array(s) ({', '.join(broken[:3])})")
    if info["arch"] in models.available():
        if not isinstance(variables.get("params"), dict):
            raise _damaged(vars_path, f"holds no 'params' (only {sorted(variables)})")
        if info.get("image_shape") is not None:
            h, w, c = info["image_shape"]
            module = models.create(info["arch"], info["num_classes"], **info.get("kwargs", {}))
            needs = f"{info['arch']} with {info['num_classes']} outputs on its recorded {h}x{w}x{c} input needs"
            problem = variables_mismatch(module, variables, (h, w, c), needs)
            if problem:
                raise _damaged(vars_path, problem)
    return variables, info


def load_classifier(path: str, dtype=jnp.float32, what: str = "model") -> tuple[Any, dict, dict]:
    """(module, variables, info) of an exported zoo classifier (a teacher, a zoo model)."""
    variables, info = load_model(path)
    if info["arch"] not in models.available():
        raise UserError(f"{what} {path!r} is a {info['arch']!r}, not a classifier of the model zoo; "
                        "name an exported classifier (a training workdir or a `jka convert` output)")
    return models.create(info["arch"], info["num_classes"], dtype=dtype, **info.get("kwargs", {})), variables, info
