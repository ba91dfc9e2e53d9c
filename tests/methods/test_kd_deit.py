"""DeiT's distillation token as ``kd.deit``: the objective against NumPy, the config checks, one step."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import errors, run
from jka.methods import kd


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _numpy_deit(mode, alpha, beta, T, z_cls, z_dist, t, y):
    rows = np.arange(len(y))
    ce = -_log_softmax(z_cls)[rows, y].mean()
    if mode == "hard":
        distil = -_log_softmax(z_dist)[rows, t.argmax(-1)].mean()
    else:  # T² KL(softmax(t/T) || softmax(z_dist/T)), mean over the batch
        p_t = np.exp(_log_softmax(t / T))
        distil = T * T * (p_t * (_log_softmax(t / T) - _log_softmax(z_dist / T))).sum(-1).mean()
    return beta * ce + alpha * distil, ce, distil


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_deit_objective_matches_numpy(mode):
    rng = np.random.default_rng(0)
    z_cls, z_dist, t = (rng.normal(size=(6, 5)) * 2 for _ in range(3))
    y = rng.integers(0, 5, 6)
    s = kd.Settings(T=3.0, alpha=0.3, beta=0.7, deit=mode)
    feats = {"logits_cls": jnp.asarray(z_cls, jnp.float32), "logits_dist": jnp.asarray(z_dist, jnp.float32)}
    total, metrics = kd.deit_objective(s, feats, jnp.asarray(t, jnp.float32), jnp.asarray(y))
    want, ce, distil = _numpy_deit(mode, 0.3, 0.7, 3.0, z_cls, z_dist, t, y)
    np.testing.assert_allclose(float(total), want, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["ce"]), ce, rtol=1e-5)
    np.testing.assert_allclose(float(metrics[f"deit_{mode}"]), distil, rtol=1e-5)


def _cfg(**kd_overrides):
    cfg = run.load("digits/deit")
    cfg.kd.update(kd_overrides)
    return cfg


@pytest.mark.parametrize("change,message", [
    (lambda c: c.model.kwargs.update(dist_token=False), "set model.name='vit' and model.kwargs.dist_token=True"),
    (lambda c: c.kd.update(beta=0.0), "set kd.beta > 0"),
    (lambda c: c.teachers.append(dict(c.teachers[0])), "kd.deit needs exactly 1 entry in teachers"),
])
def test_deit_config_checks_are_one_line(change, message):
    cfg = _cfg()
    change(cfg)
    with pytest.raises(errors.ConfigError) as info:
        run.validate(cfg)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_deit_student_predicts_with_the_mean_of_its_heads_and_learns_through_both():
    cfg = _cfg()
    student = kd.common.Net.create("vit", 10, jnp.float32, **dict(cfg.model.kwargs, depth=1))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 8, 8, 1)), jnp.float32)
    params = jax.jit(student.init)(jax.random.key(0), x)["params"]
    s = kd.Settings(deit="hard", alpha=0.5, beta=0.5)
    t, y = jnp.asarray(np.eye(10)[[1, 2, 3, 4]] * 5.0), jnp.asarray([0, 1, 2, 3])

    def loss(params):
        logits, feats, _ = student.apply({"params": params}, x, train=True)
        return kd.deit_objective(s, feats, t, y)[0], (logits, feats)

    grads, (logits, feats) = jax.jit(jax.grad(loss, has_aux=True))(params)
    np.testing.assert_allclose(logits, (feats["logits_cls"] + feats["logits_dist"]) / 2, rtol=1e-6)
    assert float(jnp.abs(grads["head"]["kernel"]).max()) > 0 and float(jnp.abs(grads["head_dist"]["kernel"]).max()) > 0
    assert float(jnp.abs(grads["dist_token"]).max()) > 0
