"""Algorithms by name. Each file in this package holds one algorithm (its extra modules, its loss,
its step) as a subclass of :class:`jka.algorithms.base.Algorithm` with a unique ``name``; the
registry finds them, so adding an algorithm means adding a file."""
from __future__ import annotations

import importlib
import pkgutil

from jka.errors import unknown_choice

_REGISTRY: dict | None = None


def registry() -> dict:
    global _REGISTRY
    if _REGISTRY is None:
        from jka.algorithms.base import Algorithm

        found = {}
        for info in pkgutil.iter_modules(__path__):
            if info.name.startswith("_") or info.name == "base":
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            for obj in vars(module).values():
                if (isinstance(obj, type) and issubclass(obj, Algorithm) and obj.__module__ == module.__name__
                        and obj.name != "base"):
                    if obj.name in found:
                        raise RuntimeError(f"two algorithms are named {obj.name!r}")
                    found[obj.name] = obj
        _REGISTRY = found
    return _REGISTRY


def get(name: str):
    algos = registry()
    if name not in algos:
        raise unknown_choice("algorithm", name, algos)
    return algos[name]
