"""ReviewKD (docs/methods.md, "ReviewKD") against NumPy and PyTorch.

The loss that ``reviewkd.loss`` reports on random student/ABF weights is recomputed in NumPy from the
same student and teacher features: the ABF stack written out (1×1 conv + training BatchNorm; the
attention merge with the deeper fused map upsampled by repetition; 3×3 conv + BatchNorm), fused from the
pooled level up, then HCL = Σ_levels [mse + Σ_{l ∈ 4,2,1, l < H} w_l·mse(pool_l)] / (1 + Σ w_l) with
w = ½, ¼, ⅛ over the pooled levels used (a 4×4 map: ½ at 2×2, ¼ at 1×1), and ce·CE + warm-up·weight·HCL.
Adaptive average pooling and nearest resizing at sizes that do not divide are checked against PyTorch's
``adaptive_avg_pool2d`` and ``interpolate``.
"""
import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jka.losses.distill.hcl import adaptive_avg_pool
from jka.methods.distill import reviewkd
from jka.models.layers import BN_EPS
from tests.objectives import reference as ref

RTOL = 1e-4


def _conv(x, kernel, bias=None):
    """NHWC 'same' convolution (odd kernel, zero padding) in NumPy."""
    k = ref.f64(kernel)
    p = k.shape[0] // 2
    h, w = x.shape[1:3]
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = sum(xp[:, i:i + h, j:j + w] @ k[i, j] for i in range(k.shape[0]) for j in range(k.shape[1]))
    return out if bias is None else out + ref.f64(bias)


def _bn_train(x, p):
    mu, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
    return (x - mu) / np.sqrt(var + BN_EPS) * ref.f64(p["scale"]) + ref.f64(p["bias"])


def _up(y, h):
    return np.repeat(np.repeat(y, h // y.shape[1], axis=1), h // y.shape[2], axis=2)


def _abf_stack_np(aux, fs):
    outs, deeper = [None] * len(fs), None
    for i in reversed(range(len(fs))):
        p = aux[f"abf{i}"]
        x = _bn_train(_conv(ref.f64(fs[i]), p["conv1"]["kernel"]), p["bn1"])
        if deeper is not None:
            y = _up(deeper, x.shape[1])
            z = _conv(np.concatenate([x, y], -1), p["att"]["kernel"], p["att"]["bias"])
            a = 1 / (1 + np.exp(-z))
            x = x * a[..., :1] + y * a[..., 1:]
        outs[i], deeper = _bn_train(_conv(x, p["conv2"]["kernel"]), p["bn2"]), x
    return outs


def _pool(x, level):
    n, h, w, c = x.shape
    return x.reshape(n, level, h // level, level, w // level, c).mean((2, 4))


def hcl_np(fs_list, ft_list, weights=(0.5, 0.25, 0.125)):
    total = 0.0
    for fs, ft in zip(fs_list, ft_list):
        fs, ft = ref.f64(fs), ref.f64(ft)
        used = list(zip([lv for lv in (4, 2, 1) if lv < fs.shape[1]], weights))   # ½ for the first level used
        loss = np.mean((fs - ft) ** 2) + sum(w * np.mean((_pool(fs, lv) - _pool(ft, lv)) ** 2) for lv, w in used)
        total += loss / (1 + sum(w for _, w in used))
    return total


def _levels_np(feats):
    return [feats[n] for n in ("block1", "block2", "block3")] + [np.asarray(feats["pooled"])[:, None, None, :]]


@pytest.fixture(scope="module")
def setup():
    d = ref.digits_method(reviewkd, "reviewkd", "distill/digits:method=reviewkd", teacher_width=1.0)

    def loss_of(params):
        return reviewkd.loss(d.parts, d.settings, d.teacher, params, d.batch_stats, [d.tv], d.x, d.batch, 0.5)

    (loss, (_, metrics)), grads = jax.jit(jax.value_and_grad(loss_of, has_aux=True))(d.params)
    s, s_feats = ref.student_outputs(d)
    _, t_feats = d.module.apply(d.tv, d.x, train=False)
    aux = jax.tree.map(np.asarray, d.params["aux"])
    return d.parts, d.settings, float(loss), metrics, s, s_feats, t_feats, aux, np.asarray(d.batch["label"]), grads


def test_reviewkd_total_equals_numpy(setup):
    parts, settings, loss, metrics, s, s_feats, t_feats, aux, y, _ = setup
    assert (settings.weight, settings.ce, parts.review.mid) == (1.0, 1.0, 64)
    assert parts.s_names == parts.t_names == ["block1", "block2", "block3"]
    fused = _abf_stack_np(aux, _levels_np(s_feats))
    hcl = hcl_np(fused, _levels_np(t_feats))
    np.testing.assert_allclose(float(metrics["hcl"]), hcl, rtol=RTOL)
    np.testing.assert_allclose(loss, ref.ce(s, y) + 0.5 * hcl, rtol=RTOL)
    # the checks above would fail with another level weighting or without the pooled level
    for wrong in (hcl_np(fused, _levels_np(t_feats), (0.5, 0.5, 0.5)), hcl_np(fused[:3], _levels_np(t_feats)[:3])):
        assert abs(wrong - hcl) > 10 * RTOL * hcl


def test_every_student_and_abf_weight_has_a_gradient(setup):
    grads = setup[-1]
    assert set(grads) == {"student", "aux"} and set(grads["aux"]) == {f"abf{i}" for i in range(4)}
    assert "att" not in grads["aux"]["abf3"] and "att" in grads["aux"]["abf0"]  # the deepest level is not fused
    assert all(bool(np.any(np.asarray(g) != 0)) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("size,out", [(7, 4), (8, 2), (5, 1), (3, 2)])
def test_adaptive_pool_is_pytorchs(size, out):
    x = np.random.default_rng(size).normal(size=(2, size, size, 3)).astype(np.float32)
    want = F.adaptive_avg_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), out).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(np.asarray(adaptive_avg_pool(x, out)), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size,out", [(1, 4), (4, 8), (3, 7), (8, 5)])
def test_nearest_is_pytorchs(size, out):
    x = np.random.default_rng(size).normal(size=(2, size, size, 3)).astype(np.float32)
    want = F.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), (out, out), mode="nearest").permute(0, 2, 3, 1)
    np.testing.assert_array_equal(np.asarray(reviewkd.nearest(x, out, out)), want.numpy())
