"""Model distance: 1 − mean_i cos(a_i^A, a_i^B)."""
import numpy as np

from jka.transfer.distance import distance_matrix, model_distance, per_image_cosine, rank_sources, resize_maps


def test_self_distance_zero_and_matrix_symmetric():
    rng = np.random.default_rng(0)
    maps = {n: rng.normal(size=(10, 6, 6)) for n in "abc"}
    maps["d"] = rng.normal(size=(10, 3, 3))  # a smaller map size is resized to 6×6
    names, d = distance_matrix(maps)
    assert names == list("abcd")
    np.testing.assert_allclose(np.diag(d), 0.0)
    np.testing.assert_allclose(d, d.T)
    assert model_distance(maps["a"], maps["a"]) < 1e-12
    assert model_distance(maps["a"], 3.0 * maps["a"]) < 1e-12  # scale-free


def test_distance_hand_values():
    a = np.zeros((2, 2, 2))
    b = np.zeros((2, 2, 2))
    a[0, 0, 0], b[0, 0, 1] = 1, 1  # image 0: orthogonal maps, cos 0
    a[1, 1, 1], b[1, 1, 1] = 2, -5  # image 1: opposite maps, cos −1
    np.testing.assert_allclose(per_image_cosine(a, b), [0.0, -1.0])
    assert np.isclose(model_distance(a, b), 1 - (0 - 1) / 2)


def test_resize_keeps_constant_maps_and_ranking_orders():
    m = np.ones((3, 4, 4))
    np.testing.assert_allclose(resize_maps(m, (8, 8)), np.ones((3, 8, 8)), atol=1e-6)
    d = np.array([[0, .3, .1], [.3, 0, .2], [.1, .2, 0]])
    assert [n for n, _ in rank_sources(d, ["x", "y", "z"], "x", higher_is_better=False)] == ["z", "y"]
    assert [n for n, _ in rank_sources(d, ["x", "y", "z"], "x", higher_is_better=True)] == ["y", "z"]
