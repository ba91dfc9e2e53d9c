"""Where a PyTorch state-dict key lives in the Flax variables, and back (torch-free, so ``.safetensors``
files convert without PyTorch). Re-exported by :mod:`jka.convert.torch_models`."""
from __future__ import annotations

import re

BN_STATS = {"running_mean": "mean", "running_var": "var"}  # PyTorch BatchNorm buffer → Flax batch_stats leaf
WEIGHTS = ("kernel", "scale")  # a PyTorch ``weight`` in Flax: a conv/linear's, a BatchNorm's
_INDEX = re.compile(r"_(\d+)(?=_|$)")  # a PyTorch index that flax_path glued to the module before it


def flax_path(torch_key: str, is_norm: bool) -> tuple[str, tuple[str, ...]]:
    """``(collection, path)`` of the Flax leaf for a PyTorch state-dict key.

    ``is_norm`` says whether the owning module is a BatchNorm (its ``weight`` becomes ``scale``).
    ``num_batches_tracked`` has no Flax counterpart; callers skip it.
    """
    parts = torch_key.split(".")
    *mods, leaf = parts
    path: list[str] = []
    for m in mods:
        if m.isdigit() and path:
            path[-1] = f"{path[-1]}_{m}"
        else:
            path.append(m)
    if leaf in BN_STATS:
        return "batch_stats", (*path, BN_STATS[leaf])
    if leaf == "weight":
        leaf = WEIGHTS[is_norm]
    return "params", (*path, leaf)


def torch_key(collection: str, path: tuple[str, ...], torch_module: str | None = None) -> str:
    """The PyTorch key that :func:`flax_path` maps onto the Flax leaf ``(collection, path)``.

    ``torch_module`` is the owning module's PyTorch path where a family's rename table gives it
    (:func:`jka.convert.families.torch_module`); otherwise every ``_N`` glued on by
    :func:`flax_path` becomes ``.N`` again (``layer1_0/conv1/kernel`` → ``layer1.0.conv1.weight``).
    """
    *mods, leaf = path
    if collection == "batch_stats":
        leaf = {flax: torch for torch, flax in BN_STATS.items()}.get(leaf, leaf)
    elif leaf in WEIGHTS:
        leaf = "weight"
    module = torch_module or ".".join(_INDEX.sub(r".\1", m) for m in mods)
    return f"{module}.{leaf}" if module else leaf
