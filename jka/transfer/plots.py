"""Pictures of a zoo: a heat map of the score matrix and a graph (models as nodes, edges to the
nearest k). matplotlib with the Agg backend (no display needed)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(matrix: np.ndarray, names: Sequence[str], path: str, title: str, cmap: str = "viridis",
            label: str = "") -> str:
    """Annotated heat map of a (n, n) matrix, rows/columns labelled by ``names``."""
    plt = _plt()
    n = len(names)
    size = max(5.0, 0.6 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(matrix, cmap=cmap)
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    lo, hi = float(np.nanmin(matrix)), float(np.nanmax(matrix))
    for i in range(n):
        for j in range(n):
            v = matrix[i, j]
            light = (v - lo) / (hi - lo + 1e-12) < 0.5
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if light else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def nearest_edges(matrix: np.ndarray, k: int, higher_is_closer: bool) -> list[tuple[int, int]]:
    """Undirected edges from each node to its ``k`` nearest other nodes."""
    n = len(matrix)
    edges = set()
    for i in range(n):
        others = [j for j in range(n) if j != i]
        others.sort(key=lambda j: -matrix[i, j] if higher_is_closer else matrix[i, j])
        for j in others[:k]:
            edges.add((min(i, j), max(i, j)))
    return sorted(edges)


def graph(matrix: np.ndarray, names: Sequence[str], path: str, title: str, k: int = 2,
          higher_is_closer: bool = True, groups: Sequence[str] | None = None) -> str:
    """Models on a circle, each joined to its ``k`` nearest; thicker and darker = closer."""
    plt = _plt()
    n = len(names)
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False) + np.pi / 2
    pos = np.stack([np.cos(ang), np.sin(ang)], 1)
    edges = nearest_edges(matrix, min(k, n - 1), higher_is_closer)
    vals = np.array([matrix[i, j] for i, j in edges]) if edges else np.zeros(0)
    closeness = vals if higher_is_closer else -vals
    lo, hi = (closeness.min(), closeness.max()) if len(vals) else (0.0, 1.0)
    fig, ax = plt.subplots(figsize=(7, 7))
    cmap = plt.get_cmap("Blues")
    for (i, j), c, v in zip(edges, closeness, vals):
        t = (c - lo) / (hi - lo + 1e-12)
        ax.plot(*zip(pos[i], pos[j]), color=cmap(0.35 + 0.65 * t), lw=1 + 4 * t, zorder=1)
        mid = (pos[i] + pos[j]) / 2
        ax.text(*mid, f"{v:.2f}", fontsize=7, ha="center", va="center", zorder=3,
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))
    kinds = list(dict.fromkeys(groups)) if groups else [None]
    colors = plt.get_cmap("tab10")
    for idx, (p, name) in enumerate(zip(pos, names)):
        color = colors(kinds.index(groups[idx]) % 10) if groups else colors(0)
        ax.scatter(*p, s=500, color=color, zorder=2, edgecolors="black")
        ax.text(p[0] * 1.22, p[1] * 1.22, name, ha="center", va="center", fontsize=9)
    if groups:
        for kind in kinds:
            ax.scatter([], [], color=colors(kinds.index(kind) % 10), label=kind, s=80)
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
