"""DEPARA (CVPR 2020): deep attribution graphs, their similarity, model and layer selection.

A model's graph over the probe set: node i is the attribution map of probe image i, edge (i, j)
is the cosine similarity between the model's features of images i and j (upper triangle, i < j).
Similarity of two graphs::

    S(A, B) = mean_i cos(node_i^A, node_i^B) + λ · Spearman(edges^A, edges^B)

Model selection ranks sources by ``S(source, target)``; layer selection scores each layer's graph
of one source against the target graph and picks the highest.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from jka.transfer.attribution import ZooModel, attribution_maps, feature_vectors
from jka.transfer.distance import per_image_cosine

_EPS = 1e-12


@dataclasses.dataclass
class Graph:
    nodes: np.ndarray  # (N, H, W) attribution maps
    edges: np.ndarray  # (N (N − 1) / 2,) cosine similarity of features, pairs i < j


def edge_weights(features: np.ndarray) -> np.ndarray:
    """Cosine similarity of the features of every image pair i < j (row-major upper triangle)."""
    f = np.asarray(features, np.float64).reshape(len(features), -1)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), _EPS)
    # all pairs at once as one Gram matrix (a BLAS product), then its upper triangle, row by row
    return (f @ f.T)[np.triu_indices(len(f), k=1)]


def build_graph(model: ZooModel, images: np.ndarray, layer: str = "pooled", method: str = "grad_input",
                mesh=None, batch_size: int = 256) -> Graph:
    """The DEPARA graph of ``model`` at ``layer`` over the probe ``images``."""
    nodes = attribution_maps(model, images, layer, method, mesh, batch_size)
    feats = feature_vectors(model, images, layer, mesh, batch_size)
    return Graph(nodes, edge_weights(feats))


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``, ties given the mean of the ranks they span."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Boundaries of runs of equal values in the sorted array.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def rank_vector(x: np.ndarray) -> np.ndarray:
    """Average ranks of ``x``, centred and scaled to unit norm (zeros if ``x`` is constant), so that
    the Spearman correlation of two vectors is the dot product of their rank vectors."""
    r = average_ranks(x)
    r = r - r.mean()
    norm = np.sqrt(np.sum(r * r))
    return r / norm if norm > 0 else np.zeros_like(r)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation: the Pearson correlation of the average ranks (0 if one is constant)."""
    return float(np.dot(rank_vector(a), rank_vector(b)))


def _similarity(a: Graph, b: Graph, ranks_a: np.ndarray, ranks_b: np.ndarray, lam: float) -> float:
    return float(np.mean(per_image_cosine(a.nodes, b.nodes)) + lam * np.dot(ranks_a, ranks_b))


def graph_similarity(a: Graph, b: Graph, lam: float = 1.0) -> float:
    """``mean_i cos(node_i^A, node_i^B) + λ · Spearman(edges^A, edges^B)``."""
    return _similarity(a, b, rank_vector(a.edges), rank_vector(b.edges), lam)


def similarity_matrix(graphs: Mapping[str, Graph], lam: float = 1.0) -> tuple[list[str], np.ndarray]:
    """(names, S) with ``S[i, j] = graph_similarity(graphs[i], graphs[j])`` (symmetric); each graph's
    edges are ranked once, not once per pair."""
    names = list(graphs)
    ranks = {n: rank_vector(graphs[n].edges) for n in names}
    n = len(names)
    s = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            a, b = names[i], names[j]
            s[i, j] = s[j, i] = _similarity(graphs[a], graphs[b], ranks[a], ranks[b], lam)
    return names, s


def layer_scores(target: Graph, source_layers: Mapping[str, Graph], lam: float = 1.0) -> dict[str, float]:
    """Similarity of each layer's graph of a source to the target graph (layer selection)."""
    return {layer: graph_similarity(g, target, lam) for layer, g in source_layers.items()}


def select_layer(scores: Mapping[str, float]) -> str:
    return max(scores, key=scores.get)
