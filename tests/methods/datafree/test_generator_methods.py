"""Each generator-based method's compiled step runs, stays finite and moves both players; the GAN
trainer's one- and two-stage steps too. Tiny models and an untrained teacher: behaviour only."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import methods, models, run
from jka.errors import ConfigError
from jka.methods.datafree import gan
from jka.settings import read
from jka.train.teachers import Teacher


def _teacher():
    module = models.create("small_cnn", 10, width=0.25)
    variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)), train=False)
    return Teacher("small_cnn", module, variables, list(range(10)), {"width": 0.25})


def _changed(a, b):
    return any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def tiny(method: str, one_stage: bool = False, *more):
    """The digits config of ``method`` at toy sizes: 4 units of 1 generator + 2 student steps, batch 16."""
    return run.load(f"datafree/digits:method={method}", [
        "train.steps=4", f"{method}.kd_steps=2", f"{method}.g_steps=1", f"{method}.one_stage={one_stage}",
        f"{method}.nz=8", f"{method}.ngf=8", "model.kwargs={'width': 0.25}", "data.batch_size=16", *more])


@pytest.mark.parametrize("method,one_stage", [("dafl", False), ("zskt", False), ("zskt", True),
                                              ("dfad", False), ("dfad", True), ("dfq", False)])
def test_step_runs_and_updates_both_players(method, one_stage):
    cfg = tiny(method, one_stage)
    teacher = _teacher()
    program = run.validate(cfg).program(cfg, [teacher], None)
    state = program.init(jax.random.PRNGKey(1), {})
    before = jax.tree.map(np.array, state)
    step = jax.jit(program.step)
    state, metrics = step(state, [teacher.variables], {})
    assert int(state.step) == 1
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    assert _changed(before.params["student"], state.params["student"])
    assert _changed(before.params["generator"], state.params["generator"])
    out = program.export(state)  # the student: a 10-class classifier of the digits
    student = models.create(out.arch, out.num_classes, **out.info["kwargs"])
    assert student.apply(out.variables, np.zeros((3, 8, 8, 1), np.float32), train=False)[0].shape == (3, 10)


def test_one_stage_needs_a_symmetric_game():
    with pytest.raises(ConfigError, match="one_stage"):
        run.validate(tiny("dafl", True))


@pytest.mark.parametrize("loss,one_stage,norm", [("asymmetric", True, "group"), ("symmetric", True, "group"),
                                                  ("asymmetric", False, "batch")])
def test_gan_steps(loss, one_stage, norm):
    s = read(gan.Settings, dict(loss=loss, one_stage=one_stage, nz=8, ngf=8, ndf=8, d_norm=norm), "gan")
    tr = gan.game(s, (8, 8, 1), 16, 10)
    state = tr.init(jax.random.PRNGKey(0))
    data = jax.random.uniform(jax.random.PRNGKey(1), (2, 16, 8, 8, 1))  # two batches of real images
    before = jax.tree.map(np.array, state)
    step = jax.jit(tr.step)
    for real in data:
        state, m = step(state, real)
    assert int(state.step) == 2
    assert all(np.isfinite(float(v)) for v in m.values()), m
    assert _changed(before.params["generator"], state.params["generator"])
    assert _changed(before.params["discriminator"], state.params["discriminator"])


def test_asymmetric_one_stage_gan_refuses_batch_norm():
    with pytest.raises(ConfigError, match="d_norm=group"):
        gan.game(read(gan.Settings, dict(loss="asymmetric", one_stage=True, d_norm="batch"), "gan"), (8, 8, 1), 16, 10)
    with pytest.raises(ConfigError, match="d_norm=group"):  # and so does the config, before any work
        run.validate(run.load("datafree/digits_gan:d_norm=batch"))


def test_generator_loss_weights_are_config_keys():
    cfg = run.load("datafree/digits:method=dfq", ["dfq.bal=10", "dfq.bn=0.5"])
    assert (cfg.dfq.bal, cfg.dfq.bn, cfg.dfq.adv, cfg.dfq.oh) == (10.0, 0.5, 1.0, 1.0)
    s = methods.get("dfq").validate(cfg)
    assert (s.adv, s.bn, s.oh, s.bal) == (1.0, 0.5, 1.0, 10.0)
    dafl = run.load("datafree/digits:method=dafl")
    assert (dafl.dafl.oh, dafl.dafl.act, dafl.dafl.bal) == (1.0, 0.001, 20.0)
    zskt = run.load("datafree/digits:method=zskt", ["zskt.T=4.0"])  # the paper's game is at 1; T is an option
    assert methods.get("zskt").validate(zskt).T == 4.0
