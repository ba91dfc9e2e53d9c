"""FFL: w(e), the batch loss against NumPy, the fusion step on digits, the export, settings."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jka import losses, models, run
from jka.configs.common import config
from jka.errors import ConfigError
from jka.methods.common import preparer
from jka.methods.distill import ffl
from jka.methods.distill.ffl import ffl_loss, ramp_weight
from jka.train.state import State, make_optimizer
from jka.train.update import apply


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
    g_ref = jax.grad(lambda f: losses.cross_entropy(f, y) + losses.kd(f, (l1 + l2) / 2, 3.0))(lf)
    np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-6)


def _cfg(**section):
    cfg = run.complete(config("ffl", ffl=dict(num_branches=2, branches=None, shared_trunk=False, feature_key="auto",
                                               T=3.0, ramp_epochs=2, fusion_channels=None,
                                               fusion_optim=dict(weight_decay=1e-5))))
    cfg.ffl.update(section)
    cfg.model.name = "small_cnn"
    cfg.model.kwargs = dict(width=0.25)
    cfg.data.batch_size = 64
    cfg.train.steps = 60
    cfg.train.progress = False
    return cfg


def _program(cfg):
    return run.validate(cfg).program(cfg, [], None)


def _batch(program):
    return {"image": program.data.train.images[:64], "label": program.data.train.labels[:64].astype(np.int32)}


def test_ffl_trains_on_digits(tmp_path):
    summary = run.train(_cfg(), str(tmp_path))
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
    program = _program(cfg)
    batch = _batch(program)
    state = program.init(jax.random.PRNGKey(0), batch)
    new, metrics = jax.jit(program.step)(state, [], batch)
    assert np.isfinite(float(metrics["loss"]))
    same = jax.tree.map(lambda a, b: bool(jnp.all(a == b)), state.params, new.params)
    assert all(jax.tree.leaves(same["subnet0"])) and all(jax.tree.leaves(same["subnet1"]))
    assert not all(jax.tree.leaves(same["fusion"]))


def test_two_groups_update_as_the_old_multi_transform():
    """The sub-networks' group and the fusion module's group update the parameters bit for bit as the
    old single optimizer did (``optax.multi_transform`` of the same two optimizers over all parts),
    global-norm clipping and weight decay included."""
    cfg = _cfg(fusion_optim=dict(name="adam", lr=0.2, weight_decay=1e-3, grad_clip=0.5))
    cfg.optim.grad_clip = 1.0
    subnets_tx = make_optimizer(cfg.optim, 60)
    fusion_tx = make_optimizer(ffl.fusion_optim(cfg, run.validate(cfg).read(cfg)), 60)
    rng = np.random.default_rng(0)
    tree = lambda: {"subnet0": {"w": rng.normal(size=(3, 4))}, "subnet1": {"w": rng.normal(size=(5,))},  # noqa: E731
                    "fusion": {"w": rng.normal(size=(2, 2)), "b": rng.normal(size=(2,))}}
    params = jax.tree.map(jnp.asarray, tree())
    state = State.create(jax.random.PRNGKey(0), {k: {"params": v} for k, v in params.items()},
                         {"subnets": (("subnet0", "subnet1"), subnets_tx), "fusion": (("fusion",), fusion_tx)})
    labels = {k: jax.tree.map(lambda _, k=k: "fusion" if k == "fusion" else "subnets", v) for k, v in params.items()}
    tx = optax.multi_transform({"subnets": subnets_tx, "fusion": fusion_tx}, labels)
    opt = tx.init(params)
    for _ in range(3):
        grads = jax.tree.map(jnp.asarray, tree())
        updates, opt = tx.update(grads, opt, params)
        params = optax.apply_updates(params, updates)
        state = apply(apply(state, "subnets", grads), "fusion", grads)
    jax.tree.map(np.testing.assert_array_equal, state.params, params)


def test_shared_trunk_export_is_branch0():
    cfg = _cfg(shared_trunk=True)
    cfg.model.name = "cifar_resnet8"
    cfg.model.kwargs = dict(shared_stages=2)
    program = _program(cfg)
    batch = _batch(program)
    state = program.init(jax.random.PRNGKey(1), batch)
    state, _ = jax.jit(program.step)(state, [], batch)
    x = preparer(cfg, program.data, jnp.float32)(None, batch["image"][:8], augment=False)
    net = models.create("cifar_resnet8", 10, shared_stages=2, num_branches=2)
    subs, _ = net.apply(state.variables("net"), x, train=False)
    out = program.export(state)
    single = models.create(out.arch, out.num_classes, **out.info["kwargs"])
    logits, _ = single.apply(out.variables, x, train=False)
    np.testing.assert_allclose(logits, subs[0], rtol=1e-5, atol=1e-5)


def test_ffl_rejects_one_subnetwork():
    with pytest.raises(ConfigError):
        run.validate(_cfg(num_branches=1))


@pytest.mark.parametrize("key, value, needle", [
    ("no_such_key", 1, "ffl.no_such_key is not a setting"),
    ("T", 0, "ffl.T=0 is not valid"),
    ("shared_trunk", "yes", "ffl.shared_trunk='yes' is not valid"),
    ("branches", [{"kwargs": {}}], "ffl.branches=.* is not valid"),
    ("fusion_optim", {"learning_rate": 0.1}, "ffl.fusion_optim=.* is not valid"),
    ("fusion_optim", {"name": "rmsprop"}, "ffl.fusion_optim.name='rmsprop'.*valid choices"),
    ("fusion_channels", 0, "ffl.fusion_channels=0 is not valid"),
])
def test_bad_settings_are_refused_before_any_work(key, value, needle):
    cfg = _cfg()
    cfg.ffl = {**cfg.ffl.to_dict(), key: value}  # as a config file writes it (no ConfigDict type check)
    with pytest.raises(ConfigError, match=needle):
        run.validate(cfg)


def test_no_teacher_and_no_branches_with_a_shared_trunk():
    cfg = _cfg()
    cfg.teachers = [dict(workdir="t")]
    with pytest.raises(ConfigError, match="ffl trains its sub-networks from scratch"):
        run.validate(cfg)
    cfg = _cfg(shared_trunk=True, branches=[dict(name="small_cnn"), dict(name="small_cnn")])
    with pytest.raises(ConfigError, match="leave ffl.branches empty"):
        run.validate(cfg)
