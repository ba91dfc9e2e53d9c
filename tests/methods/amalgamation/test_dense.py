"""The pieces of task branching that exist so far: SegNet pooling, dense metrics, scene data."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import models
from jka.data.scenes import make_scenes
from jka.losses import dense
from jka.models.segnet import max_pool_with_indices, max_unpool


def test_unpool_puts_each_maximum_back_where_it_came_from():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 6, 3))
    pooled, idx = max_pool_with_indices(x)
    np.testing.assert_allclose(pooled, x.reshape(2, 2, 2, 3, 2, 3).max((2, 4)), rtol=1e-6)
    up = max_unpool(pooled, idx)
    assert up.shape == x.shape
    # Each 2×2 window holds one non-zero, equal to the window's maximum and at its position.
    win = np.asarray(up).reshape(2, 2, 2, 3, 2, 3)
    np.testing.assert_allclose(win.sum((2, 4)), pooled, rtol=1e-6)
    assert ((np.asarray(up) == np.asarray(x)) | (np.asarray(up) == 0)).all()


def test_segmentation_metrics_hand_values_with_ignore():
    labels = jnp.array([[[0, 1], [1, 255]]])
    pred = jnp.array([[[0, 1], [0, 1]]])
    scores = dense.segmentation_scores(dense.confusion_matrix(pred, labels, 2))
    # 3 labelled pixels, 2 right; IoU class 0 = 1/2, class 1 = 1/2.
    assert scores["pixel_acc"] == pytest.approx(2 / 3)
    assert scores["miou"] == pytest.approx(0.5)


def test_depth_metrics_hand_values_with_invalid_pixels():
    target = jnp.array([[[1.0, 2.0], [4.0, 0.0]]])  # 0 = invalid
    pred = jnp.array([[[1.0, 3.0], [4.0, 9.0]]])
    s = dense.depth_scores(dense.depth_sums(pred, target))
    assert s["rmse"] == pytest.approx(np.sqrt(1 / 3))
    assert s["abs_rel"] == pytest.approx((0 + 0.5 + 0) / 3)
    assert s["delta1"] == pytest.approx(2 / 3) and s["delta2"] == pytest.approx(1.0)


def test_scenes_are_deterministic_with_occlusion_and_both_targets():
    a, b = make_scenes(8, seed=3), make_scenes(8, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.seg, b.seg)
    assert a.images.shape[1:3] == a.seg.shape[1:3] == a.depth.shape[1:3] == (32, 32)
    assert len(np.unique(a.seg)) > 2 and np.isfinite(a.depth).all()


def test_segnet_and_branchy_student_shapes():
    x = jnp.zeros((1, 32, 32, 3))
    seg = models.create("segnet", 5, width=0.125)
    v = seg.init(jax.random.PRNGKey(0), x)
    out = seg.apply({"params": v["params"], "batch_stats": v["batch_stats"]}, x)
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (1, 32, 32, 5)
    with pytest.raises(Exception, match="task_channels"):
        models.create("branchy_segnet", 6, width=0.125)
