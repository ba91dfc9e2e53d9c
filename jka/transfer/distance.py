"""Model distance from attribution maps (NeurIPS 2019 form).

``d(A, B) = 1 − mean_i cos(a_i^A, a_i^B)`` over the probe set, where ``a_i^M`` is model M's
attribution map of probe image i; maps of different sizes are resized (bilinear) to the larger size
first. A zoo gives a distance matrix, a ranking of sources per target and (see ``plots``) a graph.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import jax
import numpy as np

_EPS = 1e-12


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w) maps → (N, H, W), bilinear."""
    maps = np.asarray(maps, np.float32)
    if maps.shape[1:] == tuple(size):
        return maps
    return np.asarray(jax.image.resize(maps, (maps.shape[0], *size), "bilinear", antialias=True))


def per_image_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """cos(a_i, b_i) for each image i of two (N, ...) stacks (resized to a common size if maps)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim == 3 and a.shape[1:] != b.shape[1:]:
        size = max(a.shape[1], b.shape[1]), max(a.shape[2], b.shape[2])
        a, b = resize_maps(a, size).astype(np.float64), resize_maps(b, size).astype(np.float64)
    if len(a) != len(b):
        raise ValueError(f"the two stacks cover {len(a)} and {len(b)} probe images; use the same probe set")
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    num = np.sum(a * b, axis=1)
    return num / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), _EPS)


def model_distance(maps_a: np.ndarray, maps_b: np.ndarray) -> float:
    """``1 − mean_i cos(a_i^A, a_i^B)``."""
    return float(1.0 - np.mean(per_image_cosine(maps_a, maps_b)))


def distance_matrix(maps: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """(names, D) with ``D[i, j] = model_distance(maps[i], maps[j])``; symmetric, zero diagonal."""
    names = list(maps)
    n = len(names)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            d[i, j] = d[j, i] = model_distance(maps[names[i]], maps[names[j]])
    return names, d


def rank_sources(scores: np.ndarray, names: Sequence[str], target: str,
                 higher_is_better: bool) -> list[tuple[str, float]]:
    """The other models, best source for ``target`` first, by row ``target`` of a similarity
    (``higher_is_better``) or distance matrix."""
    t = list(names).index(target)
    pairs = [(n, float(scores[t, j])) for j, n in enumerate(names) if n != target]
    return sorted(pairs, key=lambda p: -p[1] if higher_is_better else p[1])
