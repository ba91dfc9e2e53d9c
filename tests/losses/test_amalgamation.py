"""Amalgamation losses against independent NumPy computations on hand-checkable inputs."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import losses
from jka.losses.amalgamation import MMD_SIGMAS, entropy, mmd2, select_least_entropy


def np_mmd2(x, y, sigmas=MMD_SIGMAS):
    x = x.reshape(len(x), -1) / np.linalg.norm(x.reshape(len(x), -1), axis=1, keepdims=True)
    y = y.reshape(len(y), -1) / np.linalg.norm(y.reshape(len(y), -1), axis=1, keepdims=True)

    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(np.exp(-d2 / (2 * s * s)) for s in sigmas)

    return max(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean(), 0.0)


def test_sigmas_are_the_spec_bandwidths():
    assert MMD_SIGMAS == (0.001, 0.01, 0.05, 0.1, 0.2, 1.0, 2.0)


def test_mmd2_two_orthogonal_points_by_hand():
    # One row each, unit and orthogonal: ‖x − y‖² = 2, so K_xx = K_yy = 7 (seven bandwidths) and
    # K_xy = Σ_σ exp(−1/σ²) = e^{-1} + e^{-1/4} (the five small bandwidths give ~0).
    x, y = np.array([[3.0, 0.0]]), np.array([[0.0, 0.5]])  # normalisation makes them unit
    expected = 14.0 - 2.0 * (math.exp(-1.0) + math.exp(-0.25))
    assert float(mmd2(x, y)) == pytest.approx(expected, rel=1e-5)


def test_mmd2_matches_numpy_on_feature_maps():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 2, 2, 3)).astype(np.float32)
    y = (rng.normal(size=(5, 2, 2, 3)) + 0.5).astype(np.float32)
    assert float(mmd2(x, y)) == pytest.approx(np_mmd2(x, y), rel=1e-4, abs=1e-5)
    assert float(mmd2(x, y, sigmas=(0.5,))) == pytest.approx(np_mmd2(x, y, (0.5,)), rel=1e-4, abs=1e-5)


def test_mmd2_is_zero_for_identical_batches_and_scale_invariant():
    x = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    assert float(mmd2(x, x)) == pytest.approx(0.0, abs=1e-5)
    assert float(mmd2(x, 3.0 * x)) == pytest.approx(0.0, abs=1e-5)  # rows are L2-normalised
    assert float(mmd2(x, x[::-1])) >= 0.0  # clamped


def test_entropy_by_hand():
    # uniform over 4 → log 4; one-hot-ish → ~0; [0, log 3] → p = (1/4, 3/4)
    h = np.asarray(entropy(np.array([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]])))
    assert h[0] == pytest.approx(math.log(4), rel=1e-6)
    assert h[1] == pytest.approx(0.0, abs=1e-6)
    h2 = float(entropy(np.array([[0.0, math.log(3.0)]]))[0])
    assert h2 == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), rel=1e-6)


def test_select_least_entropy_picks_the_most_confident_teacher_per_sample():
    a = np.array([[5.0, 0.0, 0.0], [0.1, 0.0, 0.0], [1.0, 1.0, 1.0]])   # confident, unsure, uniform
    b = np.array([[0.5, 0.0, 0.0], [0.0, 9.0, 0.0], [1.0, 1.0, 1.0]])   # unsure, confident, uniform
    w = np.asarray(select_least_entropy([a, b]))
    np.testing.assert_array_equal(w, [[1, 0], [0, 1], [1, 0]])  # a tie goes to the first teacher


def test_per_sample_kl_matches_numpy():
    s = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])
    t = np.array([[2.0, 0.0, 1.0], [3.0, 1.0, 0.0]])
    T = 2.0

    def sm(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = sm(t / T), sm(s / T)
    expected = T * T * (p * (np.log(p) - np.log(q))).sum(-1)
    got = T * T * losses.kl_rows(jax.nn.log_softmax(jnp.asarray(t) / T), jax.nn.log_softmax(jnp.asarray(s) / T))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)
    # kd is its mean over samples
    np.testing.assert_allclose(float(losses.kd(s, t, T)), expected.mean(), rtol=1e-5)
