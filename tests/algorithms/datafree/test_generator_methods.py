"""Each generator-based method's compiled step runs, stays finite and moves both players; the GAN
trainer's one- and two-stage steps too. Tiny models and an untrained teacher: behaviour only."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import models, run
from jka.train.teachers import Teacher
from jka.recipes.datafree import digits_datafree
from jka.algorithms.datafree.gan import GANGame
from jka.errors import ConfigError


def _teacher():
    module = models.create("small_cnn", 10, width=0.25)
    variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)), train=False)
    return Teacher("small_cnn", module, variables, list(range(10)), {"width": 0.25})


def _changed(a, b):
    return any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("method,one_stage", [("dafl", False), ("zskt", False), ("zskt", True),
                                              ("dfad", False), ("dfad", True), ("dfq", False)])
def test_step_runs_and_updates_both_players(method, one_stage):
    cfg = digits_datafree(method, steps=4, kd_steps=2, g_steps=1, student_width=0.25, one_stage=one_stage,
                          nz=8, ngf=8)
    cfg.data.batch_size = 16
    teacher = _teacher()
    algo = run.lookup(method)(cfg, [teacher])
    state = algo.init(jax.random.PRNGKey(1), {})
    before = jax.tree.map(np.array, state)
    step = jax.jit(algo.train_step)
    state, metrics = step(state, [teacher.variables], {})
    assert int(state.step) == 1
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    assert _changed(before.student.params, state.student.params)
    assert _changed(before.generator.params, state.generator.params)
    assert algo.predict(state, np.zeros((3, 8, 8, 1), np.float32)).shape == (3, 10)


def test_one_stage_needs_a_symmetric_game():
    cfg = digits_datafree("dafl", steps=2, one_stage=True)
    with pytest.raises(ConfigError, match="one_stage"):
        run.lookup("dafl")(cfg, [_teacher()])


@pytest.mark.parametrize("loss,one_stage,norm", [("asymmetric", True, "group"), ("symmetric", True, "group"),
                                                  ("asymmetric", False, "batch")])
def test_gan_steps(loss, one_stage, norm):
    tr = GANGame(dict(loss=loss, one_stage=one_stage, nz=8, ngf=8, ndf=8, d_norm=norm), (8, 8, 1), 16, 10)
    state = tr.init(jax.random.PRNGKey(0))
    data = jax.random.uniform(jax.random.PRNGKey(1), (2, 16, 8, 8, 1))  # two batches of real images
    before = jax.tree.map(np.array, state)
    step = jax.jit(tr.step)
    for real in data:
        state, m = step(state, real)
    assert int(state.step) == 2
    assert all(np.isfinite(float(v)) for v in m.values()), m
    assert _changed(before.generator.params, state.generator.params)
    assert _changed(before.discriminator.params, state.discriminator.params)


def test_asymmetric_one_stage_gan_refuses_batch_norm():
    with pytest.raises(ConfigError, match="d_norm=group"):
        GANGame(dict(loss="asymmetric", one_stage=True, d_norm="batch"), (8, 8, 1), 16, 10)


def test_generator_loss_weights_are_config_keys():
    import os

    from jka import config as config_lib
    from tests.conftest import REPO

    cfg = config_lib.load(os.path.join(REPO, "configs/datafree/digits.py:method=dfq"), ["loss.bal=10", "loss.bn=0.5"])
    assert (cfg.loss.bal, cfg.loss.bn, cfg.loss.adv, cfg.loss.oh) == (10.0, 0.5, 1.0, 1.0)
    algo = run.lookup("dfq")(cfg, [_teacher()])
    assert algo.w == {"adv": 1.0, "bn": 0.5, "oh": 1.0, "bal": 10.0}
    dafl = digits_datafree("dafl", steps=2)
    assert (dafl.loss.oh, dafl.loss.act, dafl.loss.bal) == (1.0, 0.001, 20.0)
    zskt = digits_datafree("zskt", steps=2, T=4.0)
    with pytest.raises(ConfigError, match="loss.T=1"):
        run.lookup("zskt")(zskt, [_teacher()])
