"""CRD (docs/methods.md, "CRD"): the objective and the memory-bank update against an independent NumPy
computation, sample by sample, of RepDistiller's formulas: scores ``exp(v·m/τ)`` against the other
side's bank, ``Z = mean(scores of the first batch)·N`` (kept once set), the NCE loss with noise
``P_n = 1/N`` on both sides, ``ce·CE + kd·kd(T) + crd·L_crd``, and ``M[i] ← n(m·M[i] + (1 − m)·v_i)``."""
import jax
import numpy as np
import pytest

from jka.methods.distill import crd
from tests.objectives import reference as ref

RTOL = 1e-5
N, B, K, DIM, C = 40, 6, 12, 8, 5
EPS = 1e-7  # RepDistiller's, in both log ratios


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _inputs(seed):
    rng = np.random.default_rng(seed)
    v_s, v_t = (_unit(rng.normal(size=(B, DIM))).astype(np.float32) for _ in range(2))
    banks = {k: _unit(rng.normal(size=(N, DIM))).astype(np.float32) for k in ("bank_s", "bank_t")}
    index = rng.permutation(N)[:B]
    idx = np.concatenate([index[:, None], rng.integers(0, N, (B, K))], axis=1).astype(np.int32)
    logits, t = (rng.normal(size=(B, C)).astype(np.float32) * 3 for _ in range(2))
    return v_s, v_t, banks, idx, logits, t, rng.integers(0, C, B).astype(np.int32)


def nce_side_np(v, bank, idx, tau, z):
    """One side of L_crd, a loop over samples and drawn rows; ``z < 0``: Z from these scores."""
    e = np.array([[np.exp(np.dot(ref.f64(bank[j]), ref.f64(v[b])) / tau) for j in idx[b]] for b in range(len(v))])
    if z < 0:
        z = e.mean() * N
    p, noise, total = e / z, K / N, 0.0
    for b in range(len(v)):
        total += np.log(p[b, 0] / (p[b, 0] + noise + EPS))
        total += sum(np.log(noise / (p[b, j] + noise + EPS)) for j in range(1, K + 1))
    return -total / len(v), z


def objective_np(v_s, v_t, banks, idx, logits, t, y, zs=(-1.0, -1.0), tau=0.07, ce=1.0, kd=0.0, w=0.8, T=4.0):
    l_s, z_s = nce_side_np(v_s, banks["bank_t"], idx, tau, zs[0])  # student anchors, teacher's bank
    l_t, z_t = nce_side_np(v_t, banks["bank_s"], idx, tau, zs[1])  # teacher anchors, student's bank
    return ce * ref.ce(logits, y) + kd * ref.kd(logits, t, T) + w * (l_s + l_t), l_s + l_t, (z_s, z_t)


def bank_np(bank, index, v, m):
    out = ref.f64(bank).copy()
    for b, i in enumerate(index):
        r = m * out[i] + (1 - m) * ref.f64(v[b])
        out[i] = r / np.sqrt(np.sum(r * r))
    return out


def _buffers(banks, zs):
    return {**banks, "z_s": np.float32(zs[0]), "z_t": np.float32(zs[1])}


@pytest.mark.parametrize("kw", [{}, {"kd": 1.0, "tau": 0.2}, {"ce": 0.0, "crd": 1.5, "T": 2.0}])
@pytest.mark.parametrize("zs", [(-1.0, -1.0), (55.0, 30.0)])
def test_crd_objective_equals_numpy(kw, zs):
    v_s, v_t, banks, idx, logits, t, y = _inputs(0)
    s = crd.Settings(**kw)
    total, metrics, got_z = crd.objective(s, logits, t, y, v_s, v_t, _buffers(banks, zs), idx, N)
    want, l_crd, want_z = objective_np(v_s, v_t, banks, idx, logits, t, y, zs, s.tau, s.ce, s.kd, s.crd, s.T)
    np.testing.assert_allclose(float(total), want, rtol=RTOL)
    np.testing.assert_allclose(float(metrics["crd"]), l_crd, rtol=RTOL)
    np.testing.assert_allclose([float(z) for z in got_z], want_z, rtol=RTOL)


def test_bank_update_equals_numpy():
    v_s, v_t, banks, idx, *_ = _inputs(1)
    zs = (np.float32(12.0), np.float32(7.0))
    new = crd.next_buffers(_buffers(banks, (-1, -1)), idx[:, 0], v_s, v_t, zs, 0.5)
    np.testing.assert_allclose(np.asarray(new["bank_s"]), bank_np(banks["bank_s"], idx[:, 0], v_s, 0.5), rtol=RTOL)
    np.testing.assert_allclose(np.asarray(new["bank_t"]), bank_np(banks["bank_t"], idx[:, 0], v_t, 0.5), rtol=RTOL)
    assert (float(new["z_s"]), float(new["z_t"])) == (12.0, 7.0)
    # a wrong momentum or side would be caught
    assert not np.allclose(np.asarray(new["bank_s"]), bank_np(banks["bank_s"], idx[:, 0], v_s, 0.4), rtol=1e-3)
    assert not np.allclose(np.asarray(new["bank_s"]), bank_np(banks["bank_s"], idx[:, 0], v_t, 0.5), rtol=1e-3)


def test_a_perturbed_weight_sign_or_side_is_caught():
    """The comparison above would fail if a weight, the noise term, a sign or the banks' sides were wrong."""
    v_s, v_t, banks, idx, logits, t, y = _inputs(2)
    got = float(crd.objective(crd.Settings(), logits, t, y, v_s, v_t, _buffers(banks, (-1, -1)), idx, N)[0])
    want, l_crd, _ = objective_np(v_s, v_t, banks, idx, logits, t, y)
    swapped = {"bank_s": banks["bank_t"], "bank_t": banks["bank_s"]}
    for wrong in (objective_np(v_s, v_t, banks, idx, logits, t, y, w=0.85)[0],
                  objective_np(v_s, v_t, banks, idx, logits, t, y, tau=0.075)[0],
                  objective_np(v_s, v_t, banks, idx, logits, t, y, zs=(60.0, 60.0))[0],
                  objective_np(v_s, v_t, swapped, idx, logits, t, y)[0],
                  want - 2 * 0.8 * l_crd):
        assert abs(got - wrong) > 1e3 * RTOL * abs(want)


def test_the_crd_term_has_gradients_for_both_embeddings_and_none_for_the_banks():
    v_s, v_t, banks, idx, *_ = _inputs(3)
    buffers = _buffers(banks, (-1, -1))
    g = jax.grad(lambda vs, vt, b: crd.crd_loss(vs, vt, b, idx, 0.07, N)[0], argnums=(0, 1, 2))(v_s, v_t, buffers)
    assert np.abs(np.asarray(g[0])).sum() > 0 and np.abs(np.asarray(g[1])).sum() > 0
    assert all(np.abs(np.asarray(leaf)).sum() == 0 for leaf in jax.tree.leaves(g[2]))
