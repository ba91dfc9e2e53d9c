"""DKD (docs/methods.md, "DKD") and logit standardisation (docs/methods.md, "Logit standardisation")
against NumPy, written from the papers' formulas.

DKD: b = (p_y, 1 − p_y) with p = σ(z/T); p̂ the softmax of z/T with the target column *removed* (not
masked, as jka does); TCKD = KL(b_t ‖ b_s), NCKD = KL(p̂_t ‖ p̂_s), batch means; L = ce·CE +
w·T²·(α·TCKD + β·NCKD). The warm-up w = min(e / E, 1) for the 1-based epoch e. Logit standardisation:
z' = (z − mean z) / (std z + 1e-7) per row (unbiased std), on both sides, before the softmaxes of kd,
DKD and DIST (CE keeps the raw logits).
"""
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from jka import losses
from jka.methods import kd
from jka.methods.common import epoch_warmup
from jka.methods.distill import dist, dkd
from tests.methods.distill.test_dist import dist_np
from tests.objectives import reference as ref

RTOL = 1e-5


def dkd_np(s, t, y, alpha=1.0, beta=8.0, T=4.0, ce=1.0, warmup=1.0, logit_std=False):
    """(loss, TCKD, NCKD) of the paper's definition, one sample at a time."""
    z_s, z_t = (ref.standardize(s), ref.standardize(t)) if logit_std else (ref.f64(s), ref.f64(t))
    tckd, nckd = [], []
    for zs, zt, c in zip(z_s, z_t, y):
        ps, pt = ref.softmax(zs / T), ref.softmax(zt / T)
        bs, bt = np.array([ps[c], 1 - ps[c]]), np.array([pt[c], 1 - pt[c]])
        tckd.append(np.sum(bt * np.log(bt / bs)))
        qs, qt = ref.softmax(np.delete(zs, c) / T), ref.softmax(np.delete(zt, c) / T)
        nckd.append(np.sum(qt * np.log(qt / qs)))
    tckd, nckd = np.mean(tckd), np.mean(nckd)
    return ce * ref.ce(s, y) + warmup * T * T * (alpha * tckd + beta * nckd), tckd, nckd


def _inputs(seed, b=12, c=10):
    rng = np.random.default_rng(seed)
    s = (rng.normal(size=(b, c)) * 3).astype(np.float32)
    t = (rng.normal(size=(b, c)) * 3 + 1).astype(np.float32)
    return s, t, rng.integers(0, c, b).astype(np.int32)


@pytest.mark.parametrize("kw", [{}, {"alpha": 0.5, "beta": 2.0, "T": 2.0, "ce": 0.0, "warmup": 0.25},
                                {"logit_std": True}])
def test_dkd_objective_equals_numpy(kw):
    s, t, y = _inputs(0)
    warmup = kw.pop("warmup", 1.0)
    total, metrics = dkd.objective(dkd.Settings(**kw), s, t, y, warmup)
    want, tckd, nckd = dkd_np(s, t, y, warmup=warmup, **kw)
    np.testing.assert_allclose(float(total), want, rtol=RTOL)
    np.testing.assert_allclose([float(metrics["tckd"]), float(metrics["nckd"])], [tckd, nckd], rtol=RTOL)
    np.testing.assert_allclose(float(metrics["ce"]), ref.ce(s, y), rtol=RTOL)


def test_a_perturbed_weight_or_sign_is_caught():
    """The comparison above would fail if a weight, the temperature or a sign were wrong."""
    s, t, y = _inputs(1)
    got = float(dkd.objective(dkd.Settings(), s, t, y)[0])
    want, tckd, nckd = dkd_np(s, t, y)
    for wrong in (dkd_np(s, t, y, alpha=1.1)[0], dkd_np(s, t, y, beta=7.5)[0], dkd_np(s, t, y, T=3.5)[0],
                  want - 2 * 16 * tckd, dkd_np(s, t, y, logit_std=True)[0], dkd_np(s, t, y, warmup=0.95)[0]):
        assert abs(got - wrong) > 10 * RTOL * abs(want)   # ten times the tolerance of the comparison above


def test_dkd_of_identical_logits_is_ce_alone():
    s, _, y = _inputs(2)
    total, metrics = dkd.objective(dkd.Settings(), s, s, y)
    assert abs(float(metrics["tckd"])) < 1e-6 and abs(float(metrics["nckd"])) < 1e-6
    np.testing.assert_allclose(float(total), ref.ce(s, y), rtol=1e-4)


@pytest.mark.parametrize("epochs", [0.0, 3.0])
def test_warmup_is_the_epoch_ramp(epochs):
    """130 images at batch 32: 4 steps an epoch (the remainder dropped); epoch e = step // 4 + 1."""
    cfg, data = SimpleNamespace(data=SimpleNamespace(batch_size=32)), SimpleNamespace(train=np.zeros(130))
    weight = epoch_warmup(cfg, data, epochs)
    want = [1.0 if epochs == 0 else min((step // 4 + 1) / epochs, 1.0) for step in range(14)]
    np.testing.assert_allclose([float(weight(step)) for step in range(14)], want, rtol=1e-6)


def test_standardize_equals_numpy():
    s, t, _ = _inputs(3)
    np.testing.assert_allclose(np.asarray(losses.standardize(s)), ref.standardize(s), rtol=1e-5, atol=1e-6)
    z = np.asarray(losses.standardize(t * 5 + 3))   # invariant to a shift and a positive scale of a row
    np.testing.assert_allclose(z, ref.standardize(t), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(z.std(-1, ddof=1), 1.0, rtol=1e-5)
    flat = np.full((2, 10), 3.0, np.float32)   # a constant row: zeros, and a finite gradient
    assert not np.any(np.asarray(losses.standardize(flat)))
    assert np.all(np.isfinite(np.asarray(jax.grad(lambda z: losses.standardize(z)[:, 0].sum())(flat))))


@pytest.mark.parametrize("logit_std", [False, True])
def test_kd_method_objective_with_and_without_standardisation(logit_std):
    s, t, y = _inputs(4)
    settings = kd.Settings(T=2.0, alpha=9.0, beta=0.1, logit_std=logit_std)
    total, metrics = kd.objective(settings, s, t, y)
    z_s, z_t = (ref.standardize(s), ref.standardize(t)) if logit_std else (s, t)
    np.testing.assert_allclose(float(metrics["kd"]), ref.kd(z_s, z_t, 2.0), rtol=RTOL)
    np.testing.assert_allclose(float(total), 9.0 * ref.kd(z_s, z_t, 2.0) + 0.1 * ref.ce(s, y), rtol=RTOL)


def test_dist_with_standardised_logits():
    s, t, y = _inputs(5)
    total, _ = dist.objective(dist.Settings(logit_std=True), s, t, y)
    want = dist_np(ref.standardize(s), ref.standardize(t), y)
    # CE reads the raw logits: swap the standardised CE for the raw one
    want = want[0] - ref.ce(ref.standardize(s), y) + ref.ce(s, y)
    np.testing.assert_allclose(float(total), want, rtol=RTOL)
    assert abs(float(total) - dist_np(s, t, y)[0]) > 1e-2
