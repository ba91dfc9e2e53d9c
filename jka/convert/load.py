"""PyTorch state dicts → Flax variables of the jka zoo, with every key, leaf and shape checked.

A PyTorch key maps to a Flax leaf along :func:`jka.convert.naming.flax_path` (re-exported next to
the PyTorch twins in :mod:`jka.convert.torch_models`). The tensor layouts change as follows:

* conv weight ``(O, I/groups, kh, kw)`` → kernel ``(kh, kw, I/groups, O)`` (depthwise included);
* linear weight ``(out, in)`` → kernel ``(in, out)``;
* everything else (biases, BN scale/bias, running mean/var) is unchanged; ``num_batches_tracked``
  has no Flax counterpart and is dropped.

Reading ``.safetensors`` needs only numpy; ``.pt``/``.pth`` files import torch on demand.
"""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jka.convert import families, naming
from jka.convert.naming import flax_path
from jka.errors import UserError

NESTED_KEYS = ("state_dict", "model", "net")  # where training scripts usually put the weights
DROPPED_LEAVES = ("num_batches_tracked",)
MAX_LISTED = 25  # keys listed per category in a mismatch message


# ---------------------------------------------------------------- reading


def _to_numpy(value, key: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor; bf16/fp16 are widened before leaving torch
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        return value.numpy()
    try:
        return np.asarray(value)
    except Exception:  # noqa: BLE001 - anything numpy cannot read is a user error here
        raise UserError(f"state-dict entry {key!r} is a {type(value).__name__}, not a tensor; "
                        "pass the model's state_dict() (or a checkpoint holding it)") from None


def _unwrap(obj, where: str) -> Mapping:
    """Descend into ``state_dict``/``model``/``net`` (up to 4 levels) until the mapping holds tensors."""
    for _ in range(4):
        nested = [k for k in NESTED_KEYS if isinstance(obj, Mapping) and isinstance(obj.get(k), Mapping)]
        if not nested:
            break
        obj = obj[nested[0]]
    if isinstance(obj, Mapping):
        return obj
    raise UserError(f"{where} holds a {type(obj).__name__}, not a state dict; save model.state_dict() "
                    f"(or a dict with it under one of {', '.join(NESTED_KEYS)})")


def read_state_dict(src) -> dict[str, np.ndarray]:
    """A flat ``{torch_key: float32/int ndarray}`` from a path or a (possibly nested) mapping."""
    if isinstance(src, Mapping):
        raw, where = _unwrap(src, "the given state dict"), "the given state dict"
    else:
        path = os.fspath(src)
        where = repr(path)
        if not os.path.isfile(path):
            raise UserError(f"no checkpoint file at {path!r}; give a .pt/.pth/.safetensors file")
        if path.endswith(".safetensors"):
            from safetensors.numpy import load_file

            try:
                raw = load_file(path)
            except Exception as err:  # noqa: BLE001 - corrupt or foreign file
                raise UserError(f"cannot read {path!r} as safetensors ({err}); re-save it with "
                                "safetensors.torch.save_file(model.state_dict(), path)") from None
        else:
            try:
                import torch
            except ImportError:
                raise UserError(f"reading {path!r} needs PyTorch (pip install 'jka[torch]'), or convert "
                                "the checkpoint to .safetensors first") from None
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # noqa: BLE001 - pickles of arbitrary objects, corrupt files
                raise UserError(f"cannot load {path!r} with torch.load(weights_only=True) ({err}); save "
                                "only tensors: torch.save(model.state_dict(), path)") from None
            raw = _unwrap(obj, where)
    out = {}
    for key, value in raw.items():
        key = re.sub(r"^(module\.)+", "", str(key))  # DataParallel's prefixes
        if key in out:
            raise UserError(f"{where} has key {key!r} twice (with and without 'module.'); keep one copy")
        out[key] = _to_numpy(value, key)
    if not out:
        raise UserError(f"{where} holds no tensors; pass the model's state_dict()")
    return out


# ---------------------------------------------------------------- the Flax target


def flat_leaves(tree) -> dict[tuple, jax.ShapeDtypeStruct]:
    return {tuple(k.key for k in path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def target_shapes(arch: str, num_classes: int, kwargs: dict | None = None, in_channels: int = 3,
                  size: int = 32) -> dict[str, dict[tuple, tuple]]:
    """``{collection: {path: shape}}`` of ``models.create(arch, num_classes, **kwargs)`` (no FLOPs)."""
    try:  # lists (the branchy student's task_channels) as tuples: the same shapes, and cacheable
        frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in (kwargs or {}).items()))
        hash(frozen)
    except TypeError:  # unhashable option values: no caching
        return _target_shapes(arch, num_classes, dict(kwargs or {}), in_channels, size)
    return _target_shapes_cached(arch, num_classes, frozen, in_channels, size)


@functools.lru_cache(maxsize=64)
def _target_shapes_cached(arch, num_classes, frozen_kwargs, in_channels, size):
    return _target_shapes(arch, num_classes, dict(frozen_kwargs), in_channels, size)


def _target_shapes(arch, num_classes, kwargs, in_channels, size):
    size = families.input_size(arch, kwargs, size)
    try:
        model = families.flax_model(arch, num_classes, kwargs)
        x = jnp.asarray(families.to_flax_input(families.example_input(arch, kwargs, in_channels, size)))
        method = families.init_method(arch, model)
        abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False, method=method))
    except TypeError as err:
        raise UserError(f"{arch} does not take the options {kwargs} ({err}); fix --kwargs") from None
    return {c: {p: tuple(v.shape) for p, v in flat_leaves(abstract.get(c, {})).items()}
            for c in ("params", "batch_stats")}


def to_torch_layout(a: np.ndarray) -> np.ndarray:
    """Flax kernel → PyTorch weight layout (the inverse of :func:`to_flax_layout`)."""
    return a.transpose(3, 2, 0, 1) if a.ndim == 4 else a.T if a.ndim == 2 else a


def to_flax_layout(a: np.ndarray) -> np.ndarray:
    """PyTorch weight → Flax kernel: conv OIHW → HWIO, linear (out, in) → (in, out)."""
    return a.transpose(2, 3, 1, 0) if a.ndim == 4 else a.T if a.ndim == 2 else a


def torch_key(arch: str, coll: str, path: tuple) -> str:
    """The PyTorch key of a Flax leaf of ``arch`` (``layer1_0/conv1/kernel`` → ``layer1.0.conv1.weight``):
    the inverse of the mapping above, along the family's rename table where it has one."""
    return naming.torch_key(coll, tuple(path), families.torch_module(arch, tuple(path[:-1])))


def input_channels(arch, num_classes, kwargs, state) -> int:
    """Image channels the source was built for, read off the stem conv (e.g. 1 for digits' small_cnn)."""
    a, b = (target_shapes(arch, num_classes, kwargs, c)["params"] for c in (3, 5))
    stems = {p for p in a if a[p] != b.get(p)}
    for key, value in state.items():
        if value.ndim == 4 and flax_path(families.rename(arch, key), False)[1] in stems:
            return int(value.shape[1])
    return 3


# ---------------------------------------------------------------- conversion


def convert_state_dict(state: Mapping[str, np.ndarray], arch: str, num_classes: int, kwargs: dict | None = None,
                       in_channels: int | None = None, where: str = "the state dict") -> dict:
    """Map every tensor of ``state`` onto ``models.create(arch, num_classes, **kwargs)``'s variables.

    Raises one :class:`UserError` listing the missing, unexpected and mis-shaped keys if the two
    do not correspond exactly.
    """
    kwargs, arch = dict(kwargs or {}), families.arch_name(arch)
    if in_channels is None:
        in_channels = input_channels(arch, num_classes, kwargs, state)
    target = target_shapes(arch, num_classes, kwargs, in_channels)
    filled: dict[str, dict[tuple, np.ndarray]] = {"params": {}, "batch_stats": {}}
    unexpected, misshaped, misshaped_paths = [], [], set()
    for key, value in state.items():
        if key.rsplit(".", 1)[-1] in DROPPED_LEAVES:
            continue
        # a ``weight`` is a BN scale when the Flax module at that path has one, else a kernel
        candidates = [flax_path(families.rename(arch, key), is_norm) for is_norm in (False, True)]
        hits = [(c, p) for c, p in candidates if p in target[c]]
        if not hits:
            unexpected.append(key)
            continue
        coll, path = hits[0]
        value = to_flax_layout(families.reorder(arch, kwargs, key, np.asarray(value)))
        if tuple(value.shape) != target[coll][path]:
            expected = to_torch_layout(np.broadcast_to(np.int8(0), target[coll][path])).shape
            misshaped.append(f"{key} {tuple(to_torch_layout(value).shape)} vs expected {expected}")
            misshaped_paths.add((coll, path))
            continue
        filled[coll][path] = value.astype(np.float32) if np.issubdtype(value.dtype, np.floating) else value
    missing = [torch_key(arch, c, p) for c in target for p in target[c]
               if p not in filled[c] and (c, p) not in misshaped_paths]
    if missing or unexpected or misshaped:
        raise UserError(mismatch_message(where, arch, num_classes, kwargs, missing, unexpected, misshaped))
    broken = [key for key, value in state.items() if np.issubdtype(np.asarray(value).dtype, np.floating)
              and not np.isfinite(np.asarray(value, np.float32)).all()]
    if broken:
        raise UserError(f"{where} holds NaN or inf values in {len(broken)} tensor(s) ({', '.join(broken[:3])}): "
                        "it is not a usable trained network; convert a checkpoint saved before training diverged")
    return {coll: traverse_util.unflatten_dict(leaves) for coll, leaves in filled.items()}


def mismatch_message(where, arch, num_classes, kwargs, missing, unexpected, misshaped) -> str:
    def listing(name, keys):
        if not keys:
            return None
        shown = ", ".join(keys[:MAX_LISTED])
        more = f", ... and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else ""
        return f"{name} ({len(keys)}): {shown}{more}"

    parts = [p for p in (listing("missing", missing), listing("unexpected", unexpected),
                         listing("mis-shaped", misshaped)) if p]
    kw = f" with kwargs {kwargs}" if kwargs else ""
    return (f"{where} does not match {arch}{kw} with {num_classes} classes: " + "; ".join(parts) +
            ". Check the architecture name, --num-classes and --kwargs")


def load_torch(src, arch: str, num_classes: int, kwargs: dict | None = None, in_channels: int | None = None) -> dict:
    """Flax ``{'params', 'batch_stats'}`` of zoo model ``arch`` from a PyTorch checkpoint.

    ``src`` is a ``.pt``/``.pth`` file (a bare state dict or one under ``state_dict``/``model``/
    ``net``; DataParallel's ``module.`` prefixes are stripped), a ``.safetensors`` file (read
    without torch), or a state dict itself. ``in_channels`` defaults to what the stem conv has.
    ``arch`` is a jka name or a CIFAR KD benchmark name (:data:`jka.convert.families.ZOO_NAMES`).
    """
    where = "the given state dict" if isinstance(src, Mapping) else repr(os.fspath(src))
    state = read_state_dict(src)
    return convert_state_dict(state, arch, num_classes, kwargs, in_channels, where)
