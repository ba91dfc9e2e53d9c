"""docs/methods.md shared terms against NumPy (float64, tests/objectives/reference.py), fixed seeds, tiny shapes.

Checked: ``jka.losses.kd`` (convention: T²·KL(σ(t/T) ‖ σ(s/T)) — the teacher is the first argument of
the KL — summed over classes and averaged over every other axis, batch and H·W), ``jka.losses.js``
(½KL(p‖m) + ½KL(q‖m) of the tempered softmaxes, batch mean, no T² factor), the BN-statistics prior
of a real (tiny) flax teacher against BN-input moments computed in NumPy from a NumPy forward pass,
the one-hot / activation / balance terms, and total variation (the SUM of the four directional
means, docs/methods.md).
"""
import jax.numpy as jnp
import numpy as np
import pytest

from jka import losses
from jka.losses import priors
from tests.objectives import reference as ref

RTOL = 1e-5


def _logits(seed, shape, scale=2.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


@pytest.mark.parametrize("T", [1.0, 4.0, 20.0])
def test_kd_is_t2_kl_teacher_first_batch_mean(T):
    s, t = _logits(0, (6, 5), 2.0 * T), _logits(1, (6, 5), 2.0 * T)   # logits scaled with T: KL stays O(1)
    np.testing.assert_allclose(float(losses.kd(s, t, T)), ref.kd(s, t, T), rtol=RTOL)
    # hand check of the direction of the KL on one row: KL(σ(t) ‖ σ(s)), not KL(σ(s) ‖ σ(t))
    p, q = ref.softmax(t[:1] / T), ref.softmax(s[:1] / T)
    want = T * T * float(np.sum(p * np.log(p / q)))
    np.testing.assert_allclose(float(losses.kd(s[:1], t[:1], T)), want, rtol=RTOL)
    assert abs(float(losses.kd(s, t, T)) - ref.kd(t, s, T)) > 1e-3   # the reverse KL is a different number


def test_kd_dense_outputs_mean_over_batch_and_pixels():
    s, t = _logits(2, (2, 3, 4, 5)), _logits(3, (2, 3, 4, 5))
    want = 4.0 * ref.kl_rows(ref.softmax(t / 2.0), ref.softmax(s / 2.0)).mean()   # mean over B·H·W rows
    np.testing.assert_allclose(float(losses.kd(s, t, 2.0)), want, rtol=RTOL)


@pytest.mark.parametrize("T", [1.0, 3.0])
def test_js_matches_numpy_formula(T):
    s, t = _logits(4, (7, 6)), _logits(5, (7, 6))
    np.testing.assert_allclose(float(losses.js(s, t, T)), ref.js(s, t, T), rtol=RTOL)
    # tiny hand case: p = (1, 0), q = (0, 1) ⇒ m = (½, ½), JS = ln 2 (the maximum)
    big = np.array([[50.0, -50.0]], np.float32)
    np.testing.assert_allclose(float(losses.js(big, -big, 1.0)), np.log(2.0), rtol=RTOL)


def test_bn_prior_of_a_real_teacher_matches_numpy_moments():
    teacher = ref.tiny_teacher(0, (4, 4, 3))
    x = np.random.default_rng(6).normal(size=(5, 4, 4, 3)).astype(np.float32)
    (logits, feats), sown = teacher.module.apply(teacher.variables, jnp.asarray(x), train=False, mutable=["bn_stats"])
    got = float(priors.bn_statistics(sown["bn_stats"], teacher.variables["batch_stats"]))
    want_logits, want_pooled, inputs, running = ref.tiny_forward(teacher.variables, x)
    np.testing.assert_allclose(np.asarray(logits), want_logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(feats["pooled"]), want_pooled, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got, ref.r_bn(inputs, running), rtol=RTOL)


def test_one_hot_activation_balance_match_numpy():
    t = _logits(7, (8, 5))
    f = _logits(8, (8, 3))
    y = np.array([0, 1, 2, 3, 4, 0, 1, 2])
    np.testing.assert_allclose(float(priors.one_hot(t)), ref.one_hot_term(t), rtol=RTOL)
    np.testing.assert_allclose(float(priors.one_hot(t, jnp.asarray(y))), ref.ce(t, y), rtol=RTOL)
    np.testing.assert_allclose(float(priors.activation(f)), -np.abs(f).mean(), rtol=RTOL)
    np.testing.assert_allclose(float(priors.balance(t)), ref.bal_term(t), rtol=RTOL)
    # hand value: uniform mean prediction over 4 classes ⇒ Σ p̄ log p̄ = −log 4
    np.testing.assert_allclose(float(priors.balance(np.zeros((3, 4), np.float32))), -np.log(4.0), rtol=RTOL)


def test_tv_is_the_sum_of_the_four_directional_means():
    """docs/methods.md: L_tv = Σ over right, down and the two diagonals of the mean |neighbour difference|."""
    x = np.random.default_rng(9).normal(size=(2, 5, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(float(priors.total_variation(x)), ref.tv_reference(x), rtol=RTOL)
    # hand value: a 2×2 image [[0, 1], [0, 1]]: right |1−0| = 1, down 0, diagonal 1, anti-diagonal 1 ⇒ 3
    img = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32).reshape(1, 2, 2, 1)
    np.testing.assert_allclose(float(priors.total_variation(img)), 3.0, rtol=RTOL)
