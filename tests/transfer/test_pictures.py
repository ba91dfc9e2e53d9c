"""The zoo pictures: the heat map's colours span the off-diagonal values (the self-similarity on the
diagonal is a grey cell without a number), its text is readable, and drawing switches no backend."""
import re

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")

from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from jka.transfer import plots  # noqa: E402
from jka.transfer.study import write_outputs  # noqa: E402

NAMES = ["alpha", "beta", "gamma", "delta"]
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _matrix():
    # off-diagonal 1.51-1.82, diagonal 2.00: the diagonal would otherwise set the colour scale
    m = np.array([[2.00, 1.51, 1.60, 1.70],
                  [1.51, 2.00, 1.82, 1.65],
                  [1.60, 1.82, 2.00, 1.55],
                  [1.70, 1.65, 1.55, 2.00]])
    return m


def _cell_texts(fig):
    """{(row, col): text} of the texts drawn in the heat map's cells (data coordinates)."""
    ax = fig.axes[0]
    out = {}
    for t in ax.texts:
        x, y = t.get_position()
        out[(int(round(y)), int(round(x)))] = t
    return out


def test_heatmap_scale_diagonal_and_text():
    m = _matrix()
    fig = plots.heatmap_figure(m, NAMES, "DEPARA similarity (higher = more transferable)",
                               label="DEPARA similarity")
    images = [a for a in fig.axes[0].get_children() if isinstance(a, AxesImage)]
    assert len(images) == 1
    im = images[0]
    # the colour range is the off-diagonal one
    assert im.norm.vmin == pytest.approx(1.51) and im.norm.vmax == pytest.approx(1.82)
    data = im.get_array()
    eye = np.eye(4, dtype=bool)
    assert np.ma.is_masked(data) and data.mask[eye].all() and not data.mask[~eye].any()
    # the drawn colours: smallest and largest off-diagonal values at the two ends of the colour map,
    # the diagonal in the neutral grey
    rgba = im.to_rgba(data)
    cmap = im.get_cmap()
    assert np.allclose(rgba[0, 1], cmap(0.0)) and np.allclose(rgba[1, 2], cmap(1.0))
    assert np.allclose(rgba[0, 0][:3], matplotlib.colors.to_rgb(plots.DIAGONAL))
    # every off-diagonal cell shows its value; the diagonal shows no number
    cells = _cell_texts(fig)
    assert set(cells) == {(i, j) for i in range(4) for j in range(4)}
    for (i, j), t in cells.items():
        if i == j:
            assert not NUMBER.match(t.get_text().strip())
        else:
            assert float(t.get_text()) == pytest.approx(m[i, j], abs=0.005)
    # contrast: white on the dark end of viridis, black on the bright end
    assert matplotlib.colors.to_rgb(cells[(0, 1)].get_color()) == (1.0, 1.0, 1.0)
    assert matplotlib.colors.to_rgb(cells[(1, 2)].get_color()) == (0.0, 0.0, 0.0)
    # readable text everywhere: cells, tick labels, colour bar, title
    texts = [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()] + [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(set(ticks)) == sorted(NAMES)
    assert min(t.get_fontsize() for t in texts) >= 8
    assert fig.axes[1].get_ylabel() == "DEPARA similarity"  # the labelled colour bar


def test_crowded_values_get_distinct_colours():
    """Many weak pairs and two strong ones: the weak ones spread over more of the colour map than a
    linear scale would give them, colours keep the value order, and the diagonal stays grey."""
    rng = np.random.default_rng(0)
    n = 6
    m = rng.uniform(0.10, 0.25, (n, n))
    m = (m + m.T) / 2
    m[0, 1] = m[1, 0] = 1.3
    m[2, 3] = m[3, 2] = 1.1
    np.fill_diagonal(m, 2.0)
    fig = plots.heatmap_figure(m, [f"m{i}" for i in range(n)], "similarity")
    im = [a for a in fig.axes[0].get_children() if isinstance(a, AxesImage)][0]
    off = np.sort(m[~np.eye(n, dtype=bool)])
    t = np.asarray(im.norm(off))
    assert t[0] == pytest.approx(0.0) and t[-1] == pytest.approx(1.0)
    assert np.all(np.diff(t) >= 0)
    weak = off[off < 0.5]
    linear = (weak.max() - weak.min()) / (off.max() - off.min())
    assert float(im.norm(weak.max()) - im.norm(weak.min())) > 2 * linear
    rgba = im.to_rgba(im.get_array())
    assert np.allclose(rgba[np.eye(n, dtype=bool)][:, :3], matplotlib.colors.to_rgb(plots.DIAGONAL))
    assert "stretched" in fig.axes[1].get_ylabel()


def test_distance_heatmap_reverses_colours(tmp_path):
    """For a distance (lower = closer) the closest pair is still the bright end."""
    m = np.array([[0.0, 3.0, 9.0], [3.0, 0.0, 6.0], [9.0, 6.0, 0.0]])
    fig = plots.heatmap_figure(m, NAMES[:3], "attribution distance", cmap="viridis_r")
    im = [a for a in fig.axes[0].get_children() if isinstance(a, AxesImage)][0]
    assert (im.norm.vmin, im.norm.vmax) == (3.0, 9.0)
    assert plots._luminance(im.to_rgba(3.0)) > plots._luminance(im.to_rgba(9.0))


def test_pictures_switch_no_backend(tmp_path):
    before = matplotlib.get_backend()
    result = {"method": "depara", "kind": "similarity", "higher_is_closer": True, "layer": "logits",
              "probe_images": 12, "names": NAMES, "matrix": _matrix().tolist(), "rankings": {}}
    paths = write_outputs(result, str(tmp_path), k=1, groups=["a", "a", "b", "b"], tensorboard=False)
    assert matplotlib.get_backend() == before
    from PIL import Image

    for key in ("heatmap", "graph"):
        with Image.open(paths[key]) as im:
            assert im.size[0] > 300 and im.size[1] > 300


def test_pictures_import_no_pyplot(tmp_path):
    """In a fresh process (``matplotlib.get_backend()`` itself imports pyplot to resolve the
    backend): drawing leaves the backend setting as it was and never imports pyplot."""
    import subprocess
    import sys

    code = f"""
import sys, numpy as np, matplotlib
raw = dict.__getitem__(matplotlib.rcParams, "backend")
from jka.transfer import plots
plots.heatmap(np.eye(3) + 1, ["a", "b", "c"], {str(tmp_path / "h.png")!r}, "t")
plots.graph(np.eye(3) + 1, ["a", "b", "c"], {str(tmp_path / "g.png")!r}, "t")
assert dict.__getitem__(matplotlib.rcParams, "backend") == raw, "backend changed"
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "h.png").stat().st_size > 1000 and (tmp_path / "g.png").stat().st_size > 1000


def test_graph_text_is_readable():
    fig = plots.graph_figure(_matrix(), NAMES, "graph", k=2, higher_is_closer=True, groups=["a", "a", "b", "b"])
    texts = [t for t in fig.findobj(Text) if t.get_text().strip()]
    assert {"alpha", "beta", "gamma", "delta"} <= {t.get_text() for t in texts}
    assert min(t.get_fontsize() for t in texts) >= 8
    # each edge value appears once, on its edge
    values = [t.get_text() for t in fig.axes[0].texts if NUMBER.match(t.get_text())]
    edges = plots.nearest_edges(_matrix(), 2, True)
    assert sorted(float(v) for v in values) == pytest.approx(sorted(_matrix()[i, j] for i, j in edges))
