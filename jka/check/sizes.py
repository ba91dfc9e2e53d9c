"""What a rehearsed state holds: its trained and frozen parts, its largest arrays, and the memory of
the compiled step."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import numpy as np

from jka.train.state import TrainState


def key_name(p) -> str:
    """The name of one step of a pytree path (a dict key, an attribute, an index)."""
    return str(getattr(p, "name", getattr(p, "key", getattr(p, "idx", p))))


def count(tree) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def _children(node):
    if isinstance(node, Mapping):
        return list(node.items())
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return [(f.name, getattr(node, f.name)) for f in dataclasses.fields(node)]
    if isinstance(node, (list, tuple)):
        return list(enumerate(node))
    return []


def _networks(params, exported) -> list:
    """``[(key or None, params)]``: the networks of the state's own params. Several side by side
    when they sit under ``student`` and others (:func:`jka.algorithms.base.student_part`), one when
    they are the model the phase exports (``exported``: its params), else several when none of the
    entries is a layer (holds an array itself: ``{'generator': ..., 'filters': ...}``)."""
    is_layer = lambda e: not isinstance(e, Mapping) or any(not isinstance(x, Mapping) for x in e.values())  # noqa: E731
    if not isinstance(params, Mapping) or len(params) < 2:
        return [(None, params)]
    if "student" in params:
        return list(params.items())
    if exported is not None and jax.tree.structure(exported) == jax.tree.structure(params):
        return [(None, params)]
    return [(None, params)] if any(is_layer(e) for e in params.values()) else list(params.items())


def parts(state, exported=None) -> tuple[dict, dict]:
    """(trained, frozen): parameters per part of the state, each named by its path.

    Trained: the ``params`` of every :class:`TrainState` (the state's own is ``student``, or one
    entry per network it holds: :func:`_networks`) and every subtree ``x`` with an optimizer state
    ``x_opt`` next to it (a network trained inside the step, e.g. CMI's head). Frozen: any other
    ``params`` (a copy the state carries, e.g. an earlier phase's generator)."""
    trained, frozen = {}, {}

    def walk(node, path):
        if isinstance(node, TrainState):
            nets = _networks(node.params, exported) if not path else [(None, node.params)]
            for key, tree in nets:
                if count(tree):
                    trained[".".join(path + ([key] if key else [])) or "student"] = count(tree)
            return
        children = _children(node)
        names = {str(k) for k, _ in children}
        for k, v in children:
            if str(k) == "params":
                frozen[".".join(path) or "params"] = count(v)
            elif f"{k}_opt" in names:
                trained[".".join(path + [str(k)])] = count(v)
            else:
                walk(v, path + [str(k)])

    walk(state, [])
    return dict(sorted(trained.items(), key=lambda kv: kv[0] != "student")), frozen


def largest(state, n: int = 5) -> list:
    """The ``n`` largest arrays of the state as (path, shape, bytes)."""
    arrays = [(".".join(key_name(p) for p in path), tuple(int(s) for s in a.shape), int(a.size * a.dtype.itemsize))
              for path, a in jax.tree_util.tree_flatten_with_path(state)[0]]
    return sorted(arrays, key=lambda a: -a[2])[:n]


def memory(compiled) -> int | None:
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend reports it
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)
