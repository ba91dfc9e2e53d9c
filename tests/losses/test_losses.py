"""Losses against hand-computed values."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from jka import losses
from jka.losses import priors


def test_kd_matches_hand_computation():
    s = jnp.array([[1.0, 0.0], [0.0, 0.0]])
    t = jnp.array([[0.0, 1.0], [2.0, 0.0]])
    T = 2.0
    # Row 1: p_t = σ([0, .5]), p_s = σ([.5, 0]); row 2: p_t = σ([1, 0]), p_s = (.5, .5).
    def sm(v):
        e = np.exp(np.asarray(v) - max(v))
        return e / e.sum()
    rows = [(sm([0, 0.5]), sm([0.5, 0])), (sm([1, 0]), np.array([0.5, 0.5]))]
    kl = [float(np.sum(pt * np.log(pt / ps))) for pt, ps in rows]
    expected = T * T * (kl[0] + kl[1]) / 2
    assert float(losses.kd(s, t, T)) == pytest.approx(expected, rel=1e-6)
    # First row by hand: p_t = (0.37754, 0.62246), p_s reversed → KL = 0.2449 * 0.12246... check value.
    assert kl[0] == pytest.approx((0.6224593 - 0.3775407) * 0.5, rel=1e-5)


def test_kd_is_zero_for_equal_logits_and_averages_dense_axes():
    x = jnp.arange(24.0).reshape(2, 3, 4) / 7
    assert float(losses.kd(x, x, 3.0)) == pytest.approx(0.0, abs=1e-7)
    s, t = jnp.zeros((2, 2, 3)), jnp.array([[[1.0, 0, 0]] * 2] * 2)
    # Every position has the same KL, so the mean equals one position's value.
    assert float(losses.kd(s, t)) == pytest.approx(float(losses.kd(s[0, :1], t[0, :1])), rel=1e-6)


def test_cross_entropy_hand_values_and_ignore_index():
    logits = jnp.array([[0.0, 0.0], [math.log(3.0), 0.0]])
    labels = jnp.array([0, 0])
    # −log(1/2) and −log(3/4).
    assert float(losses.cross_entropy(logits, labels)) == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, rel=1e-6)
    dense = jnp.zeros((1, 2, 2, 3))
    lab = jnp.array([[[0, 255], [255, 255]]])
    assert float(losses.cross_entropy(dense, lab, ignore_index=255)) == pytest.approx(math.log(3), rel=1e-6)


def test_alpha_kd_beta_ce_form():
    """The classic single-teacher form is the weighted sum of the two terms."""
    s, t, y = jnp.array([[2.0, 0.5, -1.0]]), jnp.array([[0.0, 3.0, 0.0]]), jnp.array([1])
    a, b, T = 0.9, 0.1, 4.0
    total = a * losses.kd(s, t, T) + b * losses.cross_entropy(s, y)
    p_t, p_s = np.exp(np.array([0, 0.75, 0])), np.exp(np.array([0.5, 0.125, -0.25]))
    p_t, p_s = p_t / p_t.sum(), p_s / p_s.sum()
    ce = -np.log(np.exp(0.5) / np.exp([2.0, 0.5, -1.0]).sum())
    assert float(total) == pytest.approx(a * 16 * np.sum(p_t * np.log(p_t / p_s)) + b * ce, rel=1e-5)


def test_js_symmetric_bounded():
    s, t = jnp.array([[5.0, -5.0]]), jnp.array([[-5.0, 5.0]])
    assert float(losses.js(s, t)) == pytest.approx(float(losses.js(t, s)), rel=1e-6)
    assert 0 < float(losses.js(s, t)) <= math.log(2) + 1e-6
    assert float(losses.js(s, s)) == pytest.approx(0.0, abs=1e-7)


def test_priors_hand_values():
    t = jnp.array([[0.0, 0.0], [0.0, 0.0]])
    assert float(priors.balance(t)) == pytest.approx(math.log(0.5), rel=1e-6)
    feats = jnp.array([[-1.0, 3.0]])
    assert float(priors.activation(feats)) == pytest.approx(-2.0)
    img = jnp.zeros((1, 2, 2, 1)).at[0, 0, 0, 0].set(1.0)
    # horizontal: |1-0|,|0-0| → .5; vertical .5; diagonal 1; anti-diagonal 0 → sum 2.
    assert float(priors.total_variation(img)) == pytest.approx(2.0)
    logits = jnp.array([[0.0, 1.0]])
    assert float(priors.one_hot(logits)) == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)


def test_bn_statistics_prior_matches_formula():
    import jax

    from jka import models

    m = models.create("small_cnn", 3, width=0.25)
    v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 1)))
    bs = jax.tree.map(lambda a: a + 0.3, v["batch_stats"])  # non-trivial running statistics
    variables = {"params": v["params"], "batch_stats": bs}
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 8, 8, 1))
    _, st = m.apply(variables, x, train=False, mutable=["bn_stats"])
    # Recompute each BN's input by hand: conv1 on x.
    conv = m.apply(variables, x, train=False, method=None, capture_intermediates=True,
                   mutable=["intermediates"])[1]["intermediates"]
    c1 = np.asarray(conv["conv1"]["__call__"][0])
    mu, var = c1.mean((0, 1, 2)), c1.var((0, 1, 2))
    sown = st["bn_stats"]["bn1"]["input"][0]
    np.testing.assert_allclose(sown, c1, rtol=1e-6, atol=1e-7)  # a BatchNorm records its input
    sown_mu, sown_var = priors.moments(sown)
    np.testing.assert_allclose(sown_mu, mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sown_var, var, rtol=1e-4, atol=1e-6)
    expected = 0.0
    for name in ("bn1", "bn2", "bn3"):
        a = np.asarray(st["bn_stats"][name]["input"][0], np.float64)
        m_in, v_in = a.mean((0, 1, 2)), a.var((0, 1, 2))
        expected += np.linalg.norm(m_in - np.asarray(bs[name]["mean"])) + np.linalg.norm(v_in - np.asarray(bs[name]["var"]))
    assert float(priors.bn_statistics(st["bn_stats"], bs)) == pytest.approx(expected, rel=1e-5)
