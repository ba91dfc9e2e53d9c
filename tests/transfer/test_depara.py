"""DEPARA graph similarity against an independent NumPy/SciPy computation."""
import numpy as np
import pytest
from scipy.stats import spearmanr

from jka.transfer.depara import (Graph, average_ranks, build_graph, edge_weights, graph_similarity,
                                 layer_scores, select_layer, similarity_matrix, spearman)
from tests.transfer.tiny import probe_images, tiny_linear_model


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.integers(0, 5, 40).astype(float)  # many ties
        b = a + rng.normal(size=40)
        assert np.isclose(spearman(a, b), spearmanr(a, b).statistic)
    np.testing.assert_allclose(average_ranks([3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0])


def test_edges_are_pairwise_feature_cosines():
    f = np.random.default_rng(1).normal(size=(5, 7))
    e = edge_weights(f)
    expect = [f[i] @ f[j] / np.linalg.norm(f[i]) / np.linalg.norm(f[j]) for i in range(5) for j in range(i + 1, 5)]
    np.testing.assert_allclose(e, expect)


@pytest.mark.parametrize("lam", [0.0, 1.0, 0.5])
def test_graph_similarity_matches_numpy_scipy(lam):
    rng = np.random.default_rng(2)
    na, nb = rng.normal(size=(6, 3, 3)), rng.normal(size=(6, 3, 3))
    fa, fb = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    ga, gb = Graph(na, edge_weights(fa)), Graph(nb, edge_weights(fb))
    cos = [x.ravel() @ y.ravel() / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(na, nb)]
    ea = [np.corrcoef(fa[i], fa[j])[0, 1] * 0 + fa[i] @ fa[j] / np.linalg.norm(fa[i]) / np.linalg.norm(fa[j])
          for i in range(6) for j in range(i + 1, 6)]
    eb = [fb[i] @ fb[j] / np.linalg.norm(fb[i]) / np.linalg.norm(fb[j]) for i in range(6) for j in range(i + 1, 6)]
    expect = np.mean(cos) + lam * spearmanr(ea, eb).statistic
    assert np.isclose(graph_similarity(ga, gb, lam), expect)
    assert np.isclose(graph_similarity(ga, ga, lam), 1.0 + lam)  # a graph is most similar to itself


def test_zoo_similarity_and_layer_selection():
    x = probe_images(8)
    models = [tiny_linear_model(seed=s, name=f"m{s}") for s in range(3)]
    graphs = {m.name: build_graph(m, x, "pooled") for m in models}
    names, s = similarity_matrix(graphs, 1.0)
    np.testing.assert_allclose(s, s.T)
    np.testing.assert_allclose(np.diag(s), 2.0, atol=1e-6)
    # Layer selection: the source layer that equals the target graph wins.
    src = {"flat": build_graph(models[0], x, "flat"), "pooled": build_graph(models[0], x, "pooled")}
    scores = layer_scores(graphs["m0"], src)
    assert select_layer(scores) == "pooled" and scores["pooled"] > scores["flat"]


def test_similarity_matrix_equals_pairwise_graph_similarity():
    """Entry (A, B) is graph_similarity(A, B), also for maps of different sizes (resized to a common one)."""
    sizes = (4, 3, 4)
    rng = np.random.default_rng(3)
    graphs = {f"g{k}": Graph(rng.normal(size=(6, h, h)), rng.normal(size=15)) for k, h in enumerate(sizes)}
    names, s = similarity_matrix(graphs, 0.7)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            assert np.isclose(s[i, j], graph_similarity(graphs[a], graphs[b], 0.7))
