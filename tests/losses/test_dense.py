"""Task-branching losses against their formulas on hand-checkable inputs, and the phase-2 rule."""
import jax.numpy as jnp
import numpy as np
import pytest

from jka import losses
from jka.methods.amalgamation.branching import mimic_loss, select_branch_points
from jka.errors import ConfigError
from jka.losses import dense


def test_masked_l1_and_l2_average_over_valid_pixels_only():
    pred = jnp.array([[[1.0, 3.0], [4.0, 9.0]]])
    target = jnp.array([[[1.0, 2.0], [6.0, 0.0]]])  # last pixel invalid
    valid = dense.valid_depth(target)
    assert float(dense.masked_l1(pred, target, valid)) == pytest.approx((0 + 1 + 2) / 3)
    assert float(dense.masked_l2(pred, target, valid)) == pytest.approx((0 + 1 + 4) / 3)
    # Without a mask every pixel counts; a (B, H, W, 1) prediction is the same map.
    assert float(dense.masked_l1(pred[..., None], target)) == pytest.approx((0 + 1 + 2 + 9) / 4)


def test_kd_on_dense_logits_is_the_mean_over_pixels_of_the_per_pixel_kl():
    s = np.array([[[[0.0, 1.0], [2.0, 0.0]]]], np.float32)   # (1, 1, 2, 2): two pixels, two classes
    t = np.array([[[[1.0, 0.0], [2.0, 0.0]]]], np.float32)

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(t), softmax(s)
    want = np.mean(np.sum(p * (np.log(p) - np.log(q)), -1))
    assert float(losses.kd(s, t, 1.0)) == pytest.approx(want, rel=1e-5)
    # The second pixel agrees exactly, so the mean is half the first pixel's KL.
    kl0 = np.sum(p[0, 0, 0] * (np.log(p[0, 0, 0]) - np.log(q[0, 0, 0])))
    assert float(losses.kd(s, t, 1.0)) == pytest.approx(kl0 / 2, rel=1e-5)
    assert float(mimic_loss("segmentation", s, t)) == pytest.approx(want, rel=1e-5)


def test_depth_mimic_is_l1_over_every_pixel():
    s = jnp.array([[[[1.0], [2.0]], [[3.0], [4.0]]]])
    t = jnp.array([[[[2.0], [2.0]], [[0.0], [4.5]]]])  # the teacher's 0 is a prediction, not "invalid"
    assert float(mimic_loss("depth", s, t)) == pytest.approx((1 + 0 + 3 + 0.5) / 4)


def test_segmentation_ce_ignores_label_255():
    logits = jnp.array([[[[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]]]])  # (1, 1, 3, 2)
    labels = jnp.array([[[0, 1, 255]]])
    want = (np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-1.0))) / 2
    assert float(losses.cross_entropy(logits, labels, ignore_index=255)) == pytest.approx(want, rel=1e-5)


def test_selection_takes_the_deepest_point_within_tolerance():
    table = [[1.00, 0.90, 0.80, 0.81, 0.83, 1.20],   # min 0.80 at point 2
             [0.50, 0.50, 0.50, 0.50, 0.50, 0.50]]   # all tie
    assert select_branch_points(table, 0.0) == [2, 5]      # the paper's lowest loss; ties → deepest
    assert select_branch_points(table, 0.02) == [3, 5]     # 0.81 ≤ 0.816, 0.83 is not
    assert select_branch_points(table, 0.05) == [4, 5]     # 0.83 ≤ 0.84
    assert select_branch_points(table, 1.0) == [5, 5]      # 1.20 ≤ 1.6
    with pytest.raises(ConfigError, match="tolerance"):
        select_branch_points(table, -0.1)
