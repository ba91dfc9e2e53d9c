"""An exported jka model → PyTorch: its twin's state dict as ``.safetensors``, with what loads it.

``export_torch(SRC, OUT)`` (``jka export SRC --to torch OUT``) reads the model a training workdir
exported (``SRC/model``) or a model directory, and writes the directory ``OUT``:

* ``model.safetensors``: the state dict of jka's PyTorch twin of the architecture
  (:mod:`jka.convert.torch_models`), under the reference code's key names. Every key is the
  inverse of the PyTorch → Flax mapping that ``jka convert`` uses (:func:`jka.convert.load.torch_key`,
  :func:`jka.convert.load.to_torch_layout`, :func:`jka.convert.families.reorder`); each BatchNorm
  gets its running statistics and a ``num_batches_tracked`` of 0 (int64; jka does not count
  batches, and PyTorch reads it only with ``momentum=None``). Before writing, the state dict is
  converted back with ``jka convert``'s own code and must give the same variables, bit for bit.
* ``torch.json``: the twin (``twin``: the class in :mod:`jka.convert.torch_models`; ``arch``,
  ``num_classes``, ``kwargs`` for :func:`~jka.convert.torch_models.torch_create`, ``in_channels``
  among them when not 3), the dataset ``classes`` its outputs predict and the input it expects
  (``input``: NCHW ``shape``, and ``mean``/``std``: images scaled to [0, 1], then ``(x − mean) / std``
  per channel).

Writing needs only numpy (``safetensors.numpy``); :func:`torch_module` (the twin with the weights
loaded) needs PyTorch.
"""
from __future__ import annotations

import os

import numpy as np
from safetensors.numpy import save as safetensors_bytes

from jka import paths
from jka.convert import families
from jka.convert.load import DROPPED_LEAVES, convert_state_dict, flat_leaves, input_channels, to_torch_layout, torch_key
from jka.errors import UserError
from jka.train.export import COLLECTIONS, has_model, load_model, model_dir, read_info

WEIGHTS = "model.safetensors"
INFO = "torch.json"
FORMAT = "jka-torch-export"  # torch.json's "format": what an earlier export holds


def check_out(out: str) -> None:
    """Refuse an ``OUT`` that is a file, a directory holding anything but an earlier export, or a
    new directory whose parent is missing or read-only (nothing is created)."""
    if not str(out or "").strip():
        raise UserError("OUT is empty; name a new directory for the PyTorch export, e.g. student_torch")
    if paths.is_remote(out):
        raise UserError(f"OUT {out}: `jka export` writes to a local directory; give a local path")
    refuse_occupied(out, _is_export, "the PyTorch export", "jka export")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise UserError(f"OUT {out!r}: the directory {parent} does not exist; create it first or give another path")
    if not os.access(out if os.path.isdir(out) else parent, os.W_OK | os.X_OK):
        raise UserError(f"OUT {out!r}: {parent} is not writable; give a directory you can write")


def refuse_occupied(out: str, earlier, product: str, command: str, consequence: str = "") -> None:
    """Refuse an ``out`` that is a file, or a directory holding anything but an earlier output
    (``earlier(out)``) of ``command``."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"OUT {out!r} is a file; give a new directory for {product}")
    if os.path.isdir(out) and os.listdir(out) and not earlier(out):
        held = sorted(os.listdir(out))
        raise UserError(f"OUT {out!r} already holds {', '.join(held[:4])}{', ...' if len(held) > 4 else ''} and is "
                        f"no earlier `{command}` output{consequence}; give a new or empty directory")


def holds_only(out: str, names: set, described: str, check) -> bool:
    """Whether ``out`` holds no file but ``names`` and its JSON file ``described`` passes ``check``."""
    if not set(os.listdir(out)) <= names:
        return False
    try:
        return bool(check(paths.read_json(os.path.join(out, described))))
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def _is_export(out: str) -> bool:
    return holds_only(out, {WEIGHTS, INFO}, INFO, lambda info: info.get("format") == FORMAT)


def check_source(src: str) -> dict:
    """``model.json`` of the model at ``src`` (a workdir or a model directory), refused unless it
    exists and its architecture has a PyTorch twin."""
    if not has_model(src):
        raise UserError(f"no exported model at {src!r} (expected {os.path.join(model_dir(src), 'model.json')}); "
                        f"train it first (`jka train CONFIG --workdir {src}`) or give a model directory")
    info = read_info(os.path.join(model_dir(src), "model.json"))
    _check_twin(info["arch"])
    return info


def _check_twin(arch: str) -> None:
    if arch not in families.TWINS:
        raise UserError(f"the model is a {arch!r}, which has no PyTorch twin in jka, so it cannot be exported to "
                        f"PyTorch; the architectures that can: {', '.join(sorted(families.TWINS))}")


def torch_state_dict(arch: str, variables: dict, kwargs: dict | None = None) -> dict[str, np.ndarray]:
    """The twin's state dict (float32 tensors in PyTorch layout) of Flax ``variables`` of ``arch``."""
    state = {}
    for coll in COLLECTIONS:
        for path, leaf in flat_leaves(variables.get(coll, {})).items():
            key = torch_key(arch, coll, path)
            value = families.reorder(arch, kwargs, key, to_torch_layout(np.asarray(leaf, np.float32)), to_torch=True)
            state[key] = np.ascontiguousarray(value)
            if coll == "batch_stats" and path[-1] == "mean":
                state[f"{key.rpartition('.')[0]}.{DROPPED_LEAVES[0]}"] = np.zeros((), np.int64)
    return state


def _check_inverse(state: dict, variables: dict, arch: str, num_classes: int, kwargs: dict, in_channels: int) -> None:
    """``state`` converted back by ``jka convert``'s code must give ``variables`` exactly."""
    back = convert_state_dict(state, arch, num_classes, kwargs, in_channels, where="the exported state dict")
    for coll in COLLECTIONS:
        have, want = flat_leaves(back.get(coll, {})), flat_leaves(variables.get(coll, {}))
        if have.keys() != want.keys() or any(not np.array_equal(have[p], want[p]) for p in want):
            raise UserError(f"the PyTorch export of {arch} does not convert back to the same {coll}; nothing was "
                            "written; report this as a bug")


def torch_export(info: dict, variables: dict) -> tuple[dict[str, np.ndarray], dict]:
    """``(state dict, torch.json's fields)`` of a model given by its ``model.json`` fields and variables
    (in memory; the state dict is checked to convert back to ``variables`` exactly)."""
    arch, num_classes, kwargs = info["arch"], info["num_classes"], dict(info.get("kwargs", {}))
    _check_twin(arch)
    state = torch_state_dict(arch, variables, kwargs)
    in_channels = _in_channels(info, state)
    _check_inverse(state, variables, arch, num_classes, kwargs, in_channels)
    return state, {
        "format": FORMAT, "twin": f"jka.convert.torch_models.{families.TWINS[arch]}", "arch": arch,
        "num_classes": num_classes, "kwargs": {**kwargs, **({"in_channels": in_channels} if in_channels != 3 else {})},
        "weights": WEIGHTS, **({"classes": info["classes"]} if "classes" in info else {}),
        **_input(arch, info, in_channels),
    }


def export_torch(src: str, out: str, log=print) -> dict:
    """Export the model at ``src`` (a training workdir or a model directory) to PyTorch in ``out``.

    Everything is checked before the weights are read (``out`` as :func:`check_out` says, the model's
    ``model.json`` and architecture). Returns the written ``torch.json``'s fields and ``out``.
    """
    check_out(out)
    check_source(src)
    variables, info = load_model(src)
    state, described = torch_export(info, variables)
    described["source"] = model_dir(src)
    paths.makedirs(out)
    paths.write(os.path.join(out, WEIGHTS), safetensors_bytes(state, metadata={"format": "pt"}))
    paths.write_json(os.path.join(out, INFO), described)  # last: its presence marks a whole export
    log(f"wrote {out} ({described['arch']}, {described['num_classes']} outputs, {len(state)} tensors; load it "
        f"with jka.convert.torch_module({out!r}))")
    return {"out": out, **described}


def _in_channels(info: dict, state: dict) -> int:
    """The image channels the model takes: its recorded ``image_shape``'s (which :func:`load_model`
    checked against the variables), else read off the stem conv; 3 for the generators (no images)."""
    if families.is_generator(info["arch"]):
        return 3
    if info.get("image_shape"):
        return int(info["image_shape"][-1])
    return input_channels(info["arch"], info["num_classes"], dict(info.get("kwargs", {})), state)


def _input(arch: str, info: dict, in_channels: int) -> dict:
    """torch.json's ``input``: the NCHW shape the model was trained on and its normalisation."""
    if families.is_generator(arch):
        return {"input": {"shape": [int(families.generator_options(info.get("kwargs"))["nz"])]}}
    described = {}
    if info.get("image_shape"):
        h, w, c = info["image_shape"]
        described["shape"] = [c, h, w]
    described.update({k: info[k] for k in ("mean", "std") if k in info})
    return {"input": described} if described else {}


def read_export(out: str) -> dict:
    """``torch.json`` of a ``jka export`` output, checked to be one."""
    path = os.path.join(out, INFO)
    if not os.path.isfile(path):
        raise UserError(f"no PyTorch export at {out!r} (expected {path}); make one with "
                        f"`jka export WORKDIR --to torch {out}`")
    try:
        info = paths.read_json(path)
    except ValueError as err:
        raise UserError(f"{path} is not valid JSON ({err}); export the model again") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or info.get("arch") not in families.TWINS:
        raise UserError(f"{path} is not a `jka export` description of a model with a PyTorch twin; "
                        "export the model again")
    return info


def twin(described: dict, tensors: dict):
    """jka's PyTorch twin that ``described`` (torch.json's fields) names, ``tensors`` loaded strictly,
    in eval mode. Needs PyTorch."""
    import torch

    from jka.convert.torch_models import torch_create

    with torch.device("meta"):  # built without initialising weights that the state dict replaces
        module = torch_create(described["arch"], described["num_classes"], **described.get("kwargs", {}))
    module.load_state_dict(tensors, strict=True, assign=True)
    return module.eval()


def torch_module(out: str):
    """jka's PyTorch twin of the model exported to ``out``, its weights loaded (strictly), in eval mode.

    It takes NCHW float32 images normalised as ``torch.json``'s ``input`` says (latents for the
    generators) and returns ``(logits, features)`` like the jka model. Needs PyTorch.
    """
    info = read_export(out)
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise UserError("loading a PyTorch export needs PyTorch (pip install 'jka[torch]')") from None
    weights = os.path.join(out, info.get("weights", WEIGHTS))
    try:
        return twin(info, load_file(weights))
    except Exception as err:  # noqa: BLE001 - a missing, truncated or edited weights file
        detail = " ".join(str(err).split())[:300]
        raise UserError(f"cannot load {weights} into jka's PyTorch {info['arch']} ({detail}); "
                        "export the model again") from None
