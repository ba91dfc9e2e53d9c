"""Algorithms by name. Each file holds one algorithm: its extra modules, its loss, its step."""
from __future__ import annotations

from jka.errors import unknown_choice


def registry():
    from jka.algorithms.kd import KD
    from jka.algorithms.supervised import Supervised

    return {cls.name: cls for cls in (Supervised, KD)}


def get(name: str):
    algos = registry()
    if name not in algos:
        raise unknown_choice("algorithm", name, algos)
    return algos[name]
