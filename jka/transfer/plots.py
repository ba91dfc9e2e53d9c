"""Pictures of a zoo: a heat map of the score matrix and a graph (models as nodes, edges to the
nearest k), drawn on :class:`matplotlib.figure.Figure` objects and written with ``Figure.savefig``,
which needs no ``plt`` and no display: the user's matplotlib backend is never read or switched."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from jka import paths
from jka.errors import UserError

TEXT_PT = 9      # numbers in cells, node and edge labels
TICK_PT = 10     # model names on the axes
TITLE_PT = 11
DIAGONAL = "#d4d4d4"  # neutral grey of a model's cell with itself


def require():
    """matplotlib (the ``plots`` extra), imported on first use and never as ``plt``; without it, one
    UserError saying how to install it (called first by a command that draws, to fail before the work)."""
    try:
        import matplotlib
    except ImportError:
        raise UserError("pictures need matplotlib: pip install 'jka[plots]'") from None
    import matplotlib.colors
    import matplotlib.figure

    return matplotlib


def figure(**kwargs):
    """A new Figure, drawn without ``plt`` or a backend (``Figure.savefig`` renders it)."""
    return require().figure.Figure(**kwargs)


def colormap(name: str):
    return require().colormaps[name]


def _save(fig, path: str, dpi: int = 120) -> str:
    paths.save_figure(path, fig, dpi=dpi)
    return path


def _luminance(rgba) -> float:
    r, g, b = rgba[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _decimals(span: float) -> int:
    """Decimals that tell apart values spread over ``span``: at least ~30 steps across it (2 for a
    spread of 0.3-3, 3 below)."""
    if not np.isfinite(span) or span <= 0:
        return 2
    return int(np.clip(math.ceil(math.log10(30.0 / span)), 0, 4))


def _norm(values: np.ndarray, lo: float, hi: float):
    """The colour scale from ``lo`` to ``hi``: linear, unless most values crowd one end (say many
    weak pairs and a few strong ones), then half linear, half by rank, so that crowded values get
    distinct colours while the outliers stay apart; monotone, so the colour order is the value
    order, and the colour bar's uneven ticks show the stretch."""
    colors = require().colors
    v = np.unique(values[np.isfinite(values)])
    if v.size >= 3:
        mid = (float(np.median(values)) - lo) / (hi - lo)
        if not 0.3 <= mid <= 0.7:
            ranks = np.linspace(0.0, 1.0, v.size)

            def forward(x):  # keeps a mask (the diagonal's cells stay "bad", i.e. grey)
                d = np.ma.getdata(x).astype(np.float64)
                t = 0.5 * (d - lo) / (hi - lo) + 0.5 * np.interp(d, v, ranks)
                return np.ma.masked_array(t, np.ma.getmask(x)) if np.ma.is_masked(x) else t

            grid = np.linspace(lo, hi, 2049)
            fgrid = forward(grid)

            def inverse(t):
                return np.interp(np.asarray(t, np.float64), fgrid, grid)

            norm = colors.FuncNorm((forward, inverse), vmin=lo, vmax=hi)
            norm.stretched = True
            return norm
    return colors.Normalize(vmin=lo, vmax=hi)


def heatmap_figure(matrix: np.ndarray, names: Sequence[str], title: str, cmap: str = "viridis",
                   label: str = ""):
    """The Figure of :func:`heatmap`. The diagonal (a model with itself: the largest similarity or zero
    distance, which says nothing about transfer) is a grey cell marked "self", and the colour scale
    spans the off-diagonal values only, so that their differences show (:func:`_norm`). Each cell
    carries its value, in black or white, whichever reads better on the cell's colour."""
    m = np.asarray(matrix, np.float64)
    n_rows, n_cols = m.shape
    diag = np.eye(n_rows, n_cols, dtype=bool)
    off = m[~diag & np.isfinite(m)]
    lo, hi = (float(off.min()), float(off.max())) if off.size else (0.0, 1.0)
    if hi <= lo:  # one value (or none): a scale around it
        lo, hi = lo - 0.5, hi + 0.5
    norm = _norm(off, lo, hi)
    colors = colormap(cmap).with_extremes(bad=DIAGONAL)

    n = max(n_rows, n_cols)
    longest = max((len(s) for s in names), default=4)
    cell = 0.62                                    # inches per cell: room for "1.234" at 9 pt
    names_in = 0.075 * longest + 0.3               # tick labels (rotated on x)
    fig = figure(figsize=(cell * n_cols + names_in + 2.0, cell * n_rows + names_in + 1.1),
                  layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_array(m, diag | ~np.isfinite(m)), cmap=colors, norm=norm)
    ax.set_xticks(range(n_cols), names[:n_cols], rotation=40, ha="right", rotation_mode="anchor",
                  fontsize=TICK_PT)
    ax.set_yticks(range(n_rows), names[:n_rows], fontsize=TICK_PT)
    # thin white lines between cells
    ax.set_xticks(np.arange(-0.5, n_cols), minor=True)
    ax.set_yticks(np.arange(-0.5, n_rows), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.2)
    ax.tick_params(which="both", length=0)
    ax.spines[:].set_visible(False)

    fmt = f"{{:.{_decimals(hi - lo)}f}}"
    text_pt = TEXT_PT if n <= 14 else 8
    for i in range(n_rows):
        for j in range(n_cols):
            v = m[i, j]
            if diag[i, j]:
                ax.text(j, i, "self", ha="center", va="center", fontsize=8, color="#555555", style="italic")
            elif not np.isfinite(v):
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=8, color="#555555")
            else:
                dark = _luminance(colors(norm(v))) < 0.5
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=text_pt,
                        color="white" if dark else "black")
    bar = fig.colorbar(im, ax=ax, shrink=0.85, pad=0.02)
    if getattr(norm, "stretched", False):
        label = f"{label} (colour scale stretched where values crowd)".strip()
    bar.set_label(label, fontsize=TICK_PT)
    bar.ax.tick_params(labelsize=TEXT_PT)
    ax.set_title(title, fontsize=TITLE_PT)
    return fig


def heatmap(matrix: np.ndarray, names: Sequence[str], path: str, title: str, cmap: str = "viridis",
            label: str = "") -> str:
    """Annotated heat map of a (n, n) matrix, rows/columns labelled by ``names``, as a PNG at ``path``
    (see :func:`heatmap_figure`)."""
    return _save(heatmap_figure(matrix, names, title, cmap, label), path)


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


def _segment_distance(q, a, b) -> float:
    """Distance from point ``q`` to the segment ``a``-``b``."""
    ab = b - a
    t = float(np.clip(np.dot(q - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(q - (a + t * ab)))


def graph_figure(matrix: np.ndarray, names: Sequence[str], title: str, k: int = 2,
                 higher_is_closer: bool = True, groups: Sequence[str] | None = None):
    """The Figure of :func:`graph`."""
    m = np.asarray(matrix, np.float64)
    n = len(names)
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False) + np.pi / 2
    pos = np.stack([np.cos(ang), np.sin(ang)], 1)
    edges = nearest_edges(m, min(k, n - 1), higher_is_closer) if n > 1 else []
    vals = np.array([m[i, j] for i, j in edges]) if edges else np.zeros(0)
    closeness = vals if higher_is_closer else -vals
    lo, hi = (closeness.min(), closeness.max()) if len(vals) else (0.0, 1.0)
    fmt = f"{{:.{_decimals(hi - lo)}f}}"
    fig = figure(figsize=(9, 7.2), layout="constrained")
    ax = fig.add_subplot()
    blues = colormap("Blues")
    placed = list(pos)  # label spots so far (nodes count: a label must not hide one)
    for (i, j), c, v in zip(edges, closeness, vals):
        t = (c - lo) / (hi - lo) if hi > lo else 1.0
        ax.plot(*zip(pos[i], pos[j]), color=blues(0.35 + 0.65 * t), lw=1 + 4 * t, zorder=1,
                solid_capstyle="round")
        # the value on its edge, at a spot clear of other labels and of other edges (edges through
        # the centre would otherwise stack their numbers where they cross, naming no edge)
        others = [(pos[a], pos[b]) for a, b in edges if (a, b) != (i, j)]

        def clearance(q):
            d_label = min(float(np.linalg.norm(q - p)) for p in placed)
            d_edge = min((_segment_distance(q, a, b) for a, b in others), default=1.0)
            return min(d_label, 0.35) + min(d_edge, 0.12)

        spots = [pos[i] + f * (pos[j] - pos[i]) for f in (0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78)]
        best = max(spots, key=clearance)
        placed.append(best)
        ax.text(*best, fmt.format(v), fontsize=8, ha="center", va="center", zorder=3,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
    kinds = list(dict.fromkeys(groups)) if groups else [None]
    tab = colormap("tab10")
    for idx, (p, name) in enumerate(zip(pos, names)):
        color = tab(kinds.index(groups[idx]) % 10) if groups else tab(0)
        ax.scatter(*p, s=320, color=color, zorder=2, edgecolors="black")
        # names outside the circle, anchored away from it so long names do not cross the nodes
        x, y = p * 1.13
        ha = "center" if abs(p[0]) < 0.2 else ("left" if p[0] > 0 else "right")
        va = ("bottom" if p[1] > 0 else "top") if ha == "center" else "center"
        ax.text(x, y, name, ha=ha, va=va, fontsize=TICK_PT)
    if groups:
        for kind in kinds:
            ax.scatter([], [], color=tab(kinds.index(kind) % 10), edgecolors="black", label=kind, s=100)
        ax.legend(loc="lower right", fontsize=TEXT_PT, frameon=False, bbox_to_anchor=(1.0, -0.02))
    ax.set_xlim(-1.9, 1.9)
    ax.set_ylim(-1.35, 1.35)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=TITLE_PT)
    return fig


def graph(matrix: np.ndarray, names: Sequence[str], path: str, title: str, k: int = 2,
          higher_is_closer: bool = True, groups: Sequence[str] | None = None) -> str:
    """Models on a circle, each joined to its ``k`` nearest; thicker and darker = closer. A PNG at
    ``path``."""
    return _save(graph_figure(matrix, names, title, k, higher_is_closer, groups), path)
