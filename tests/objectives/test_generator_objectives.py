"""Generator losses of DAFL, DFQ, ZSKT and DFAD (docs/methods.md) against NumPy, with the config's weights.

Each method's ``generator_loss(settings, t, pooled, r_bn, s)`` (``jka/methods/datafree/<method>.py``)
combines the terms with the weights ``cfg.<method>.<name>``; it is called on hand-made random logits,
features and R_bn, and its value compared with the documented formula written in NumPy with the literal
documented weights (DAFL oh + 0.001·act + 20·bal; DFQ adv + bn + oh + 20·bal with adv = −kd(s, t, T);
ZSKT −kd(s, t, 1); DFAD −mean|s − t|), and with overridden config weights. The student losses
(kd / L1) are checked the same way. Finally the DFQ/DAFL objective of a real tiny teacher
(``generator.teacher_outputs`` + ``generator_loss``) is compared with a NumPy forward pass of that teacher,
R_bn included, so the terms the teacher feeds in are independent of jka too.
"""
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest

from jka import methods, run
from jka.methods.datafree import dafl, dfad, dfq, generator, zskt
from tests.objectives import reference as ref

RTOL = 1e-5
MODULES = {"dafl": dafl, "zskt": zskt, "dfad": dfad, "dfq": dfq}


class Algo(NamedTuple):
    """A method's module (its pure losses) and its settings, read from the digits config."""

    module: Any
    settings: Any


def _algo(method, T=1.0, **weights):
    overrides = [f"{method}.{k}={v}" for k, v in weights.items()] + ([] if method == "dfad" else [f"{method}.T={T}"])
    cfg = run.load(f"datafree/digits:method={method}", [
        "train.steps=2", f"{method}.kd_steps=1", f"{method}.g_steps=1", f"{method}.nz=8", f"{method}.ngf=8",
        "model.kwargs={'width': 0.25}", "data.batch_size=8", *overrides])
    return Algo(MODULES[method], methods.get(method).validate(cfg))


def _inputs(seed=0, b=8, c=10, d=6):
    rng = np.random.default_rng(seed)
    t = (rng.normal(size=(b, c)) * 2).astype(np.float32)
    s = (rng.normal(size=(b, c)) * 2).astype(np.float32)
    pooled = rng.normal(size=(b, d)).astype(np.float32)
    r_bn = np.float32(rng.uniform(0.5, 3.0))
    return t, pooled, r_bn, s


def student_loss(algo, s, t):
    return algo.module.student_loss(algo.settings, s, t)


def _call(algo, t, pooled, r_bn, s):
    loss, terms = algo.module.generator_loss(algo.settings, jnp.asarray(t), jnp.asarray(pooled), jnp.asarray(r_bn),
                                             None if s is None else jnp.asarray(s))
    return float(loss), {k: float(v) for k, v in terms.items()}


def dafl_np(t, pooled, w_oh=1.0, w_act=0.001, w_bal=20.0):
    return w_oh * ref.one_hot_term(t) + w_act * ref.act_term(pooled) + w_bal * ref.bal_term(t)


def dfq_np(t, r_bn, s, T, w_adv=1.0, w_bn=1.0, w_oh=1.0, w_bal=20.0):
    return w_adv * (-ref.kd(s, t, T)) + w_bn * float(r_bn) + w_oh * ref.one_hot_term(t) + w_bal * ref.bal_term(t)


def test_dafl_generator_loss_default_weights():
    algo = _algo("dafl")
    t, pooled, r_bn, s = _inputs(0)
    loss, terms = _call(algo, t, pooled, r_bn, None)
    np.testing.assert_allclose(loss, dafl_np(t, pooled), rtol=RTOL)
    np.testing.assert_allclose(terms["act"], -np.abs(pooled).mean(), rtol=RTOL)
    np.testing.assert_allclose(float(student_loss(algo, jnp.asarray(s), jnp.asarray(t))), ref.kd(s, t, 1.0), rtol=RTOL)


def test_dafl_generator_loss_follows_config_weights():
    algo = _algo("dafl", oh=0.5, act=2.0, bal=3.0)
    t, pooled, r_bn, s = _inputs(1)
    loss, _ = _call(algo, t, pooled, r_bn, None)
    np.testing.assert_allclose(loss, dafl_np(t, pooled, 0.5, 2.0, 3.0), rtol=RTOL)


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_dfq_generator_loss_default_weights(T):
    algo = _algo("dfq", T=T)
    t, pooled, r_bn, s = _inputs(2)
    loss, terms = _call(algo, t, pooled, r_bn, s)
    np.testing.assert_allclose(loss, dfq_np(t, r_bn, s, T), rtol=RTOL)
    np.testing.assert_allclose(terms["adv"], -ref.kd(s, t, T), rtol=RTOL)   # adversarial: G maximises kd
    np.testing.assert_allclose(float(student_loss(algo, jnp.asarray(s), jnp.asarray(t))), ref.kd(s, t, T), rtol=RTOL)


def test_dfq_generator_loss_follows_config_weights():
    algo = _algo("dfq", T=2.0, adv=0.25, bn=0.5, oh=2.0, bal=7.0)
    t, pooled, r_bn, s = _inputs(3)
    loss, _ = _call(algo, t, pooled, r_bn, s)
    np.testing.assert_allclose(loss, dfq_np(t, r_bn, s, 2.0, 0.25, 0.5, 2.0, 7.0), rtol=RTOL)


def test_zskt_generator_maximises_kd_at_T1():
    algo = _algo("zskt")
    t, pooled, r_bn, s = _inputs(4)
    loss, _ = _call(algo, t, pooled, r_bn, s)
    np.testing.assert_allclose(loss, -ref.kd(s, t, 1.0), rtol=RTOL)
    np.testing.assert_allclose(float(student_loss(algo, jnp.asarray(s), jnp.asarray(t))), ref.kd(s, t, 1.0), rtol=RTOL)


def test_dfad_generator_maximises_l1_student_minimises_it():
    algo = _algo("dfad")
    t, pooled, r_bn, s = _inputs(5)
    l1 = np.abs(ref.f64(s) - ref.f64(t)).mean()
    loss, _ = _call(algo, t, pooled, r_bn, s)
    np.testing.assert_allclose(loss, -l1, rtol=RTOL)
    np.testing.assert_allclose(float(student_loss(algo, jnp.asarray(s), jnp.asarray(t))), l1, rtol=RTOL)
    # hand values: |1−0| and |−2−1| on one row of two logits ⇒ mean 2
    np.testing.assert_allclose(float(student_loss(algo, jnp.asarray([[1.0, -2.0]]), jnp.asarray([[0.0, 1.0]]))), 2.0)
    assert algo.settings.kd_steps == 1 and isinstance(algo.settings, dfad.Settings)


def test_dfad_default_schedule_is_five_student_steps_per_generator_step():
    s = dfad.Settings()   # kd_steps, g_steps: the method's defaults, and the digits config's
    assert (s.g_steps, s.kd_steps) == (1, 5)
    cfg = run.load("datafree/digits:method=dfad")
    assert (cfg.dfad.g_steps, cfg.dfad.kd_steps) == (1, 5)


@pytest.mark.parametrize("method", ["dfq", "dafl"])
def test_objective_of_a_real_teacher_matches_a_numpy_forward(method):
    """teacher_outputs (logits, pooled, R_bn of the BN inputs) + generator_loss vs the NumPy twin."""
    T = 4.0 if method == "dfq" else 1.0
    algo = _algo(method, T=T)
    teacher = ref.tiny_teacher(0)
    x = np.random.default_rng(11).normal(size=(8, 8, 8, 1)).astype(np.float32)   # normalised inputs
    t, pooled, r_bn = generator.teacher_outputs([teacher], [teacher.variables], jnp.asarray(x),
                                                with_bn=algo.module.GAME.uses_bn)
    s = np.random.default_rng(12).normal(size=(8, 10)).astype(np.float32)
    loss, _ = algo.module.generator_loss(algo.settings, t, pooled, r_bn, jnp.asarray(s))
    t_np, pooled_np, inputs, running = ref.tiny_forward(teacher.variables, x)
    if method == "dfq":
        want = dfq_np(t_np, ref.r_bn(inputs, running), s, T)
    else:
        want = dafl_np(t_np, pooled_np)
    np.testing.assert_allclose(float(loss), want, rtol=RTOL)
