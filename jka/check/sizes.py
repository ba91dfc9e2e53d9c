"""What a rehearsed state holds: its trained and frozen parts and its largest arrays (the compiled
step's memory: :mod:`jka.train.memory`)."""
from __future__ import annotations

import jax
import numpy as np


def key_name(p) -> str:
    """The name of one step of a pytree path (a dict key, an attribute, an index)."""
    return str(getattr(p, "name", getattr(p, "key", getattr(p, "idx", p))))


def count(tree) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def parts(state) -> tuple[dict, dict]:
    """(trained, frozen): parameters per part an optimizer group updates, and per ``params`` the state
    carries in its buffers (an earlier phase's generator), named by its path."""
    trained_parts = [p for _, g in state.groups for p in g.parts]
    trained = {p: count(state.params[p]) for p in trained_parts if count(state.params[p])}
    frozen = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state.buffers)[0]:
        keys = [key_name(p) for p in path]
        if "params" in keys:
            name = ".".join(["buffers"] + keys[:keys.index("params")]) or "buffers"
            frozen[name] = frozen.get(name, 0) + int(np.prod(leaf.shape))
    return trained, frozen


def largest(state, n: int = 5) -> list:
    """The ``n`` largest arrays of the state as (path, shape, bytes)."""
    arrays = [(".".join(key_name(p) for p in path), tuple(int(s) for s in a.shape), int(a.size * a.dtype.itemsize))
              for path, a in jax.tree_util.tree_flatten_with_path(state)[0]]
    return sorted(arrays, key=lambda a: -a[2])[:n]
