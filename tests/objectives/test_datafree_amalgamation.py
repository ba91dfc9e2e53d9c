"""Data-free amalgamation objectives (docs/methods.md) against NumPy, independently of jka's loss code.

``objectives.gan_loss`` (the generator's ``L_gan`` + intermediate-group consistency) and
``objectives.reproduce_loss`` (the dual network's loss) are fed random logits/features; the
expected values are written from the formulas with NumPy only (tests/objectives/reference.py):

- The paper, per teacher (``joint=False``): ``L_gan = L_oh + α L_act + β L_ie + γ L_dis`` with L_oh = CE
  against the argmax pseudo-label (multi-class) or BCE against ``[σ(y) ≥ 0.5]`` (multi-label), L_act =
  −mean|f|, L_ie = Σ p̄ log p̄, L_dis = mean|prediction|, each averaged over the teachers; plus
  ``inter ×`` the mean over intermediate groups (and teachers) of CE(prediction from group j,
  σ(prediction from the final image)). Chosen weights α = 0.1, β = 5, γ = 0 (0.1 multi-label), inter = 1.
- jka's variants (``joint=True``, ``bn`` > 0, documented in the package docstring and docs/methods.md):
  the same terms over the union logits ``[y_1 | … | y_M]`` restricted to the requested labels, and
  ``bn·R_bn``. The defaults are the paper's: per-teacher terms and no R_bn term.
- The dual loss ``Σ_m CE(g_m(O_m(F)), g_m(O_m(I_g)))`` (soft targets), plus with ``joint`` the CE over the
  concatenated requested labels.
"""
import jax.numpy as jnp
import numpy as np
import pytest

from jka.methods.datafree.amalgamation import objectives, phases
from jka.settings import read
from tests.objectives import reference as ref

RTOL = 1e-5


def _settings(**kw):
    """``datafree_amalgamation`` read as a run reads it (gamma chosen when None)."""
    return phases.resolved(read(phases.Settings, kw, "datafree_amalgamation"))


def _inputs(seed, b=6, classes=(5, 4), d=7, groups=2):
    rng = np.random.default_rng(seed)
    ys = [(rng.normal(size=(b, c)) * 2).astype(np.float32) for c in classes]
    pooled = [rng.normal(size=(b, d)).astype(np.float32) for _ in classes]
    inter = [[(rng.normal(size=(b, c)) * 2).astype(np.float32) for c in classes] for _ in range(groups)]
    return ys, pooled, inter


def _call(s, ys, pooled, inter, idx, l_bn):
    loss, terms = objectives.gan_loss(s, [jnp.asarray(y) for y in ys], [jnp.asarray(f) for f in pooled],
                                      [[jnp.asarray(y) for y in g] for g in inter], idx,
                                      None if l_bn is None else jnp.asarray(l_bn, jnp.float32))
    return float(loss), {k: float(v) for k, v in terms.items()}


def _bce(y, t):
    y = ref.f64(y)
    return np.mean(np.maximum(y, 0) - y * t + np.log1p(np.exp(-np.abs(y))))


def spec_gan_per_teacher(ys, pooled, inter, alpha, beta, gamma, w_inter, multilabel=False):
    if multilabel:
        oh = np.mean([_bce(y, (1 / (1 + np.exp(-ref.f64(y))) >= 0.5).astype(np.float64)) for y in ys])
        dis = np.mean([np.mean(1 / (1 + np.exp(-ref.f64(y)))) for y in ys])
    else:
        oh = np.mean([ref.one_hot_term(y) for y in ys])
        dis = np.mean([np.mean(ref.softmax(y)) for y in ys])
    act = np.mean([ref.act_term(f) for f in pooled])
    ie = np.mean([ref.bal_term(y) for y in ys])
    l_inter = np.mean([ref.soft_ce(g[m], ys[m]) for g in inter for m in range(len(ys))])
    return oh + alpha * act + beta * ie + gamma * dis + w_inter * l_inter


def test_chosen_weights():
    s = _settings()
    assert (s.alpha, s.beta, s.gamma, s.inter, s.bn, s.joint) == (0.1, 5.0, 0.0, 1.0, 0.0, False)
    assert (s.stream1, s.stream2) == (1.0, 0.5)
    assert _settings(multilabel=True).gamma == 0.1


def test_gan_loss_per_teacher_is_the_spec_formula():
    ys, pooled, inter = _inputs(0)
    idx = [np.arange(5), np.arange(4)]
    s = _settings(joint=False, bn=0.0, gamma=0.3)     # γ ≠ 0 so the sparsity term is weighed too
    loss, terms = _call(s, ys, pooled, inter, idx, None)
    np.testing.assert_allclose(loss, spec_gan_per_teacher(ys, pooled, inter, 0.1, 5.0, 0.3, 1.0), rtol=RTOL)
    np.testing.assert_allclose(terms["oh"], np.mean([ref.one_hot_term(y) for y in ys]), rtol=RTOL)


def test_gan_loss_multilabel_teachers_is_the_spec_formula():
    ys, pooled, inter = _inputs(1, classes=(3, 3))
    idx = [np.arange(3), np.arange(3)]
    s = _settings(multilabel=True, bn=0.0)             # γ = 0.1 chosen for multi-label; joint is ignored
    loss, _ = _call(s, ys, pooled, inter, idx, None)
    np.testing.assert_allclose(loss, spec_gan_per_teacher(ys, pooled, inter, 0.1, 5.0, 0.1, 1.0, multilabel=True),
                               rtol=RTOL)


def test_gan_loss_joint_variant_matches_the_documented_formula():
    ys, pooled, inter = _inputs(2)
    idx = [np.array([0, 2, 4]), np.array([1, 3])]      # requested labels: 3 of teacher 0, 2 of teacher 1
    s = _settings(gamma=0.3, joint=True, bn=5.0)       # jka's variants, as the digits config sets them
    l_bn = 0.7
    loss, terms = _call(s, ys, pooled, inter, idx, l_bn)
    u = np.concatenate([ys[0][:, idx[0]], ys[1][:, idx[1]]], 1)
    oh, ie, dis = ref.one_hot_term(u), ref.bal_term(u), np.mean(ref.softmax(u))
    act = np.mean([ref.act_term(f) for f in pooled])
    l_inter = np.mean([ref.soft_ce(np.concatenate([g[0][:, idx[0]], g[1][:, idx[1]]], 1), u) for g in inter])
    want = oh + 0.1 * act + 5.0 * ie + 0.3 * dis + 5.0 * l_bn + 1.0 * l_inter
    np.testing.assert_allclose(terms["inter"], l_inter, rtol=RTOL)
    np.testing.assert_allclose(loss, want, rtol=RTOL)


def test_gan_loss_default_has_no_bn_term_spec():
    ys, pooled, inter = _inputs(3)
    idx = [np.arange(5), np.arange(4)]
    s = _settings()   # the defaults: the paper's L_gan
    loss, _ = _call(s, ys, pooled, inter, idx, 0.7)
    np.testing.assert_allclose(loss, spec_gan_per_teacher(ys, pooled, inter, 0.1, 5.0, 0.0, 1.0), rtol=RTOL)


@pytest.mark.parametrize("joint", [False, True])
def test_reproduce_loss(joint):
    rng = np.random.default_rng(4)
    heads = [(rng.normal(size=(5, c)) * 2).astype(np.float32) for c in (3, 2)]
    targets = [(rng.normal(size=(5, c)) * 2).astype(np.float32) for c in (3, 2)]
    s = _settings(joint=joint)
    got = float(objectives.reproduce_loss(s, [jnp.asarray(h) for h in heads], [jnp.asarray(t) for t in targets]))
    want = sum(ref.soft_ce(h, t) for h, t in zip(heads, targets))
    if joint:
        want += ref.soft_ce(np.concatenate(heads, 1), np.concatenate(targets, 1))
    np.testing.assert_allclose(got, want, rtol=RTOL)
