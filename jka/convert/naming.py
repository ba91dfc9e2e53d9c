"""Where a PyTorch state-dict key lives in the Flax variables (torch-free, so ``.safetensors`` files
convert without PyTorch). Re-exported by :mod:`jka.convert.torch_models`."""
from __future__ import annotations


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
    if leaf in ("running_mean", "running_var"):
        return "batch_stats", (*path, leaf.removeprefix("running_"))
    if leaf == "weight":
        leaf = "scale" if is_norm else "kernel"
    return "params", (*path, leaf)
