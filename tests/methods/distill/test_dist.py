"""DIST (docs/methods.md, "DIST"): its objective against an independent NumPy computation of the
paper's formula, on random logits with the config's weights; and a short digits run that learns."""
import numpy as np
import pytest

from jka import methods, run
from jka.methods.distill import dist
from tests.objectives import reference as ref

RTOL = 1e-5


def _pearson(a, b):
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return np.array([np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)) for x, y in zip(a, b)])


def dist_np(s, t, y, T=4.0, beta=2.0, gamma=2.0, ce=1.0):
    """The paper's loss in NumPy: softmax(z / T) rows, Pearson correlation across classes (inter) and
    across the batch (intra)."""
    def softmax(z):
        e = np.exp((z - z.max(1, keepdims=True)) / T)
        return e / e.sum(1, keepdims=True)
    ps, pt = softmax(ref.f64(s)), softmax(ref.f64(t))
    inter = 1 - _pearson(ps, pt).mean()
    intra = 1 - _pearson(ps.T, pt.T).mean()
    return ce * ref.ce(s, y) + T ** 2 * (beta * inter + gamma * intra), inter, intra


def _inputs(seed, b=16, c=10):
    rng = np.random.default_rng(seed)
    s = (rng.normal(size=(b, c)) * 3).astype(np.float32)
    t = (rng.normal(size=(b, c)) * 3).astype(np.float32)
    return s, t, rng.integers(0, c, b).astype(np.int32)


@pytest.mark.parametrize("kw", [{}, {"T": 1.0, "beta": 1.0, "gamma": 1.0}, {"beta": 0.5, "gamma": 3.0, "ce": 0.0}])
def test_dist_objective_equals_numpy(kw):
    s, t, y = _inputs(0)
    settings = dist.Settings(**kw)
    total, metrics = dist.objective(settings, s, t, y)
    want, inter, intra = dist_np(s, t, y, **{**dict(T=4.0, beta=2.0, gamma=2.0, ce=1.0), **kw})
    np.testing.assert_allclose(float(total), want, rtol=RTOL)
    np.testing.assert_allclose([float(metrics["inter"]), float(metrics["intra"])], [inter, intra], rtol=RTOL)
    assert ("ce" in metrics) == (settings.ce > 0)


def test_a_perturbed_weight_or_sign_is_caught():
    """The comparison above would fail if a weight or the sign of a term were wrong."""
    s, t, y = _inputs(1)
    got = float(dist.objective(dist.Settings(), s, t, y)[0])
    want, inter, intra = dist_np(s, t, y)
    for wrong in (dist_np(s, t, y, beta=2.2)[0], dist_np(s, t, y, gamma=1.8)[0], want - 2 * 16 * 2 * inter,
                  dist_np(s, t, y, T=3.0)[0]):
        assert abs(got - wrong) > 1e3 * RTOL * abs(want)


def test_identical_logits_have_no_relation_loss():
    s, _, y = _inputs(2)
    total, metrics = dist.objective(dist.Settings(ce=0.0), s, s, y)
    assert abs(float(metrics["inter"])) < 1e-6 and abs(float(metrics["intra"])) < 1e-6 and abs(float(total)) < 1e-4


def test_dist_is_a_method_with_the_papers_defaults():
    m = methods.get("dist")
    cfg = run.load("distill/digits:method=dist")
    assert m.read(cfg) == dist.Settings(T=4.0, beta=2.0, gamma=2.0, ce=1.0)
    assert cfg.algorithm == "dist" and len(cfg.teachers) == 1
