"""DeepInversion and CMI: the contrastive/adversarial terms against NumPy, steps without NaN."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import run
from jka.errors import ConfigError
from jka.algorithms.datafree.cmi import adversarial_agreement, contrastive_loss
from jka.recipes.datafree import inversion_config


def _np_log_softmax(a):
    a = a - a.max(-1, keepdims=True)
    return a - np.log(np.exp(a).sum(-1, keepdims=True))


def test_contrastive_loss_matches_numpy():
    rng = np.random.default_rng(0)
    local = rng.normal(size=(5, 3)).astype(np.float32)
    glob = rng.normal(size=(5, 3)).astype(np.float32)
    local /= np.linalg.norm(local, axis=1, keepdims=True)
    glob /= np.linalg.norm(glob, axis=1, keepdims=True)
    valid = np.array([True, True, True, True, False])   # last row: an empty bank slot
    tau = 0.1
    logits = local[:4] @ glob[:4].T / tau                 # masked row/column simply do not exist
    want = -np.mean(np.diag(_np_log_softmax(logits)))
    got = contrastive_loss(jnp.asarray(local), jnp.asarray(glob), tau, jnp.asarray(valid))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    # all valid: mean over every row
    want_all = -np.mean(np.diag(_np_log_softmax(local @ glob.T / tau)))
    np.testing.assert_allclose(float(contrastive_loss(jnp.asarray(local), jnp.asarray(glob), tau)), want_all, rtol=1e-5)
    # batch rows (first 2) and bank rows (the valid ones of the rest) averaged separately, then added
    nll = -np.diag(_np_log_softmax(logits))
    want_split = nll[:2].mean() + nll[2:4].mean()
    got = contrastive_loss(jnp.asarray(local), jnp.asarray(glob), tau, jnp.asarray(valid), n_batch=2)
    np.testing.assert_allclose(float(got), want_split, rtol=1e-5)
    # no gradient into the global (key) side
    g = jax.grad(lambda gl: contrastive_loss(jnp.asarray(local), gl, tau))(jnp.asarray(glob))
    assert float(jnp.abs(g).max()) == 0.0


def test_adversarial_agreement_matches_numpy():
    t = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]], np.float32)
    s = np.array([[1.0, 0.5, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 2.0]], np.float32)  # rows 0, 2 agree
    lt, ls = _np_log_softmax(t), _np_log_softmax(s)
    kl = (np.exp(lt) * (lt - ls)).sum(-1)
    np.testing.assert_allclose(float(adversarial_agreement(jnp.asarray(t), jnp.asarray(s))),
                               -(kl[0] + kl[2]) / 2, rtol=1e-5)


def _tiny_cfg(name, **syn):
    own = dict(jitter=1) if name == "deepinversion" else dict(nz=8, ngf=8, crop_pad=1, bank_size=24, negatives=16,
                                                              proj_dim=16)
    cfg = inversion_config(name, 2, dict(workdir="unused"), "small_cnn", dict(width=0.25),
                           steps=3, kd_steps=2, flip=False, pool_size=32, student_crop_pad=1, student_flip=False,
                           **own, **syn)
    cfg.data.batch_size = 8
    return cfg


@pytest.mark.parametrize("name", ["deepinversion", "cmi"])
def test_round_runs_fills_pool_and_stays_finite(name, tiny_teacher):
    cfg = _tiny_cfg(name)
    algo = run.lookup(name)(cfg, [tiny_teacher])
    assert algo.student_classes == list(range(10))
    state = algo.init(jax.random.PRNGKey(0), {})
    step = jax.jit(algo.train_step)
    params0 = state.student.params
    for i in range(3):
        state, metrics = step(state, [tiny_teacher.variables], {})
        assert all(np.isfinite(float(v)) for v in jax.tree.leaves(metrics)), metrics
    assert int(state.pool.count) == 24 and int(state.pool.ptr) == 24
    pool = np.asarray(state.pool.data[:24])
    assert pool.min() >= 0.0 and pool.max() <= 1.0 and pool.std() > 0
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), state.student.params, params0))
    assert max(moved) > 0
    if name == "cmi":
        assert int(state.extra["bank"].count) == 24       # 3 rounds × 8, capacity 24
        assert state.extra["bank"].data.shape[1] == 2 * algo.feat_dim


def test_synthesis_lowers_the_teacher_loss(tiny_teacher):
    """Within one round, the best batch has a lower DeepInversion loss than the initial noise."""
    cfg = _tiny_cfg("deepinversion", lr=0.1)
    cfg.synthesis.steps = 30
    algo = run.lookup("deepinversion")(cfg, [tiny_teacher])
    state = algo.init(jax.random.PRNGKey(0), {})
    best, _, m = jax.jit(algo.synthesize)(state, [tiny_teacher.variables], jax.random.PRNGKey(1))
    k_x, k_y, _ = jax.random.split(jax.random.PRNGKey(1), 3)
    x0 = jax.random.uniform(k_x, (8, 8, 8, 1))
    from jka.algorithms.datafree.inversion import random_targets
    y = random_targets(k_y, 8, 10)
    l0, _ = algo.synthesis_loss(x0, y, [tiny_teacher.variables], state.student, jax.random.PRNGKey(5))
    assert float(m["syn_loss"]) < float(l0)


def test_reference_weights_per_method_and_unread_keys_refused(tiny_teacher):
    di = inversion_config("deepinversion", 1, dict(workdir="t")).synthesis
    cmi = inversion_config("cmi", 1, dict(workdir="t")).synthesis
    cfg = _tiny_cfg("cmi")
    cfg.synthesis.tv = 0.001  # DeepInversion's total variation: CMI does not read it
    with pytest.raises(ConfigError, match="synthesis.tv is not a setting of cmi"):
        run.lookup("cmi")(cfg, [tiny_teacher])
    assert "js_T" not in cmi and "lr" not in cmi and "bank_size" not in di
    assert (di.bn, di.oh, di.adv, di.tv, di.lr, di.js_T) == (10.0, 1.0, 1.0, 0.001, 0.1, 3.0)
    assert (cmi.bn, cmi.oh, cmi.adv, cmi.cr, cmi.lr_g, cmi.tau) == (1.0, 1.0, 0.5, 0.8, 1e-3, 0.1)
    assert (cmi.bank_size, cmi.negatives, cmi.proj_dim) == (40960, 4096, 256)


def _random_teacher(arch, image_shape):
    from jka import models
    from jka.train.teachers import Teacher
    module = models.create(arch, 10)
    variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1,) + image_shape), train=False)
    return Teacher(arch, module, dict(variables), list(range(10)))


@pytest.mark.parametrize("features, want", [("auto", "stages"), ("stages", "stages"), ("bn", "bn")])
def test_cmi_feature_of_a_resnet_teacher_is_its_stage_inputs_as_the_reference(features, want):
    """resnet34: the inputs of layer1..layer4 (64 + 64 + 128 + 256 = 512 channels), as the reference
    script hooks those four blocks; 'bn': every BatchNorm input (counted here from the teacher's
    BatchNorm statistics, one entry per BatchNorm)."""
    cfg = _tiny_cfg("cmi", features=features)
    cfg.data.image_size = 32
    teacher = _random_teacher("cifar_resnet34", (32, 32, 1))
    algo = run.lookup("cmi")(cfg, [teacher])
    bn_channels = sum(a.shape[-1] for a in jax.tree.leaves(teacher.variables["batch_stats"])) // 2  # mean, var
    assert algo.feat_dim == (512 if want == "stages" else bn_channels)
    assert bn_channels == 8512  # what the contrastive feature was before (every BatchNorm input)
    head = algo.init_extra(jax.random.PRNGKey(1))["head"]
    d = algo.feat_dim
    assert sum(a.size for a in jax.tree.leaves(head)) == d * d + d + d * 16 + 16  # Linear D→D, Linear D→proj_dim


def test_cmi_stage_features_need_a_resnet_teacher(tiny_teacher):
    with pytest.raises(ConfigError, match="needs a ResNet teacher"):
        run.lookup("cmi")(_tiny_cfg("cmi", features="stages"), [tiny_teacher])
    assert run.lookup("cmi")(_tiny_cfg("cmi"), [tiny_teacher]).stages is False  # auto: a small CNN → 'bn'
