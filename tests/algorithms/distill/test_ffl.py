"""FFL: w(e), the batch loss against NumPy, the fusion step on digits, the export."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import models
from jka.algorithms.distill.ffl import FFL, ffl_loss, ramp_weight
from jka.errors import ConfigError
from jka.recipes import base_config


def test_ramp_weight():
    assert float(ramp_weight(0, 80)) == pytest.approx(math.exp(-5.0))
    assert float(ramp_weight(40, 80)) == pytest.approx(math.exp(-5.0 * 0.25))
    assert float(ramp_weight(80, 80)) == pytest.approx(1.0)
    assert float(ramp_weight(300, 80)) == pytest.approx(1.0)
    assert float(ramp_weight(3, 0)) == pytest.approx(1.0)


def _np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_ce(z, y):
    return -np.mean(_np_log_softmax(z)[np.arange(len(y)), y])


def _np_kd(s, t, T):
    lt, ls = _np_log_softmax(t / T), _np_log_softmax(s / T)
    return T * T * np.mean(np.sum(np.exp(lt) * (lt - ls), -1))


def test_ffl_loss_matches_numpy():
    l1 = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]])
    l2 = np.array([[1.0, 1.0, 0.0], [-1.0, 2.0, 0.0]])
    lf = np.array([[3.0, -1.0, 0.0], [0.0, 1.0, 1.5]])
    y = np.array([0, 2])
    w, T = 0.3, 3.0
    expected = (_np_ce(l1, y) + _np_ce(l2, y) + _np_ce(lf, y)
                + w * (_np_kd(l1, lf, T) + _np_kd(l2, lf, T) + _np_kd(lf, (l1 + l2) / 2, T)))
    got, parts = ffl_loss([jnp.asarray(l1), jnp.asarray(l2)], jnp.asarray(lf), jnp.asarray(y), w, T)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    assert float(parts["kd_fused"]) == pytest.approx(_np_kd(lf, (l1 + l2) / 2, T), rel=1e-5)


def test_ffl_targets_are_stopped():
    """d loss / d l_f only comes from CE(l_f) and kd(l_f ← sg mean l_i), not from the sub-networks' kd."""
    l1, l2 = jnp.array([[2.0, 0.0, -1.0]]), jnp.array([[1.0, 1.0, 0.0]])
    lf, y = jnp.array([[3.0, -1.0, 0.0]]), jnp.array([1])
    g = jax.grad(lambda f: ffl_loss([l1, l2], f, y, 1.0, 3.0)[0])(lf)
    from jka import losses
    g_ref = jax.grad(lambda f: losses.cross_entropy(f, y) + losses.kd(f, (l1 + l2) / 2, 3.0))(lf)
    np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-6)


def _cfg(**ffl):
    cfg = base_config(algorithm="ffl")
    cfg.model.name = "small_cnn"
    cfg.model.kwargs = dict(width=0.25)
    cfg.data.batch_size = 64
    cfg.train.steps = 60
    cfg.train.progress = False
    cfg.ffl = dict(num_branches=2, branches=None, shared_trunk=False, feature_key="auto", T=3.0,
                   ramp_epochs=2, fusion_channels=None, fusion_optim=dict(weight_decay=1e-5))
    cfg.ffl.update(ffl)
    return cfg


def test_ffl_trains_on_digits(tmp_path):
    from jka.run import train

    summary = train(_cfg(), str(tmp_path))
    ev = summary["eval"]
    assert set(ev) == {"accuracy", "sub0_accuracy", "sub1_accuracy", "ensemble_accuracy"}
    assert ev["accuracy"] > 0.6 and ev["sub0_accuracy"] > 0.6 and ev["sub1_accuracy"] > 0.6
    # The exported model is sub-network 0, a plain zoo model.
    from jka.train.export import load_model
    _, info = load_model(str(tmp_path))
    assert info["arch"] == "small_cnn" and info["kwargs"] == {"width": 0.25}


def test_fusion_has_its_own_weight_decay():
    """With lr 0 for the sub-networks only the fusion module moves."""
    cfg = _cfg(fusion_optim=dict(lr=0.1))
    cfg.optim.lr = 0.0
    algo = FFL(cfg, [])
    batch = {"image": algo.train_ds.images[:64], "label": algo.train_ds.labels[:64].astype(np.int32)}
    state = algo.init(jax.random.PRNGKey(0), batch)
    new, metrics = jax.jit(algo.train_step)(state, [], batch)
    assert np.isfinite(float(metrics["loss"]))
    same = jax.tree.map(lambda a, b: bool(jnp.all(a == b)), state.params, new.params)
    assert all(jax.tree.leaves(same["subnet0"])) and all(jax.tree.leaves(same["subnet1"]))
    assert not all(jax.tree.leaves(same["fusion"]))


def test_shared_trunk_export_is_branch0():
    cfg = _cfg(shared_trunk=True)
    cfg.model.name = "cifar_resnet8"
    cfg.model.kwargs = dict(shared_stages=2)
    algo = FFL(cfg, [])
    batch = {"image": algo.train_ds.images[:64], "label": algo.train_ds.labels[:64].astype(np.int32)}
    state = algo.init(jax.random.PRNGKey(1), batch)
    state, _ = jax.jit(algo.train_step)(state, [], batch)
    x = algo.prepare(None, batch["image"][:8], augment=False)
    subs, _, _ = algo.forward(state.params, state.batch_stats, x, False)
    arch, n, variables, meta = algo.export(state)
    single = models.create(arch, n, **meta["kwargs"])
    logits, _ = single.apply(variables, x, train=False)
    np.testing.assert_allclose(logits, subs[0], rtol=1e-5, atol=1e-5)


def test_ffl_rejects_one_subnetwork():
    with pytest.raises(ConfigError):
        FFL(_cfg(num_branches=1), [])
