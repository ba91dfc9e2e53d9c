"""DeepInversion and CMI: the contrastive/adversarial terms against NumPy, steps without NaN, settings."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import models, run
from jka.configs.common import config
from jka.errors import ConfigError
from jka.methods import get
from jka.methods.api import Context
from jka.methods.datafree import cmi, deepinversion, inversion
from jka.methods.datafree import common as datafree
from jka.methods.common import student_net
from jka.train.teachers import Teacher


def make_teacher(classes, width=0.25, seed=0):
    m = models.create("small_cnn", len(classes), width=width)
    v = m.init(jax.random.PRNGKey(seed), jnp.zeros((1, 8, 8, 1)))
    v = {"params": v["params"], "batch_stats": v["batch_stats"]}
    return Teacher("small_cnn", m, v, list(classes), {"width": width})


@pytest.fixture
def tiny_teacher():
    return make_teacher(range(10))


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
    got = cmi.contrastive_loss(jnp.asarray(local), jnp.asarray(glob), tau, jnp.asarray(valid))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    # all valid: mean over every row
    want_all = -np.mean(np.diag(_np_log_softmax(local @ glob.T / tau)))
    np.testing.assert_allclose(float(cmi.contrastive_loss(jnp.asarray(local), jnp.asarray(glob), tau)), want_all,
                               rtol=1e-5)
    # batch rows (first 2) and bank rows (the valid ones of the rest) averaged separately, then added
    nll = -np.diag(_np_log_softmax(logits))
    want_split = nll[:2].mean() + nll[2:4].mean()
    got = cmi.contrastive_loss(jnp.asarray(local), jnp.asarray(glob), tau, jnp.asarray(valid), n_batch=2)
    np.testing.assert_allclose(float(got), want_split, rtol=1e-5)
    # no gradient into the global (key) side
    g = jax.grad(lambda gl: cmi.contrastive_loss(jnp.asarray(local), gl, tau))(jnp.asarray(glob))
    assert float(jnp.abs(g).max()) == 0.0


def test_adversarial_agreement_matches_numpy():
    t = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]], np.float32)
    s = np.array([[1.0, 0.5, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 2.0]], np.float32)  # rows 0, 2 agree
    lt, ls = _np_log_softmax(t), _np_log_softmax(s)
    kl = (np.exp(lt) * (lt - ls)).sum(-1)
    np.testing.assert_allclose(float(cmi.adversarial_agreement(jnp.asarray(t), jnp.asarray(s))),
                               -(kl[0] + kl[2]) / 2, rtol=1e-5)


def _tiny_cfg(name, **section):
    own = dict(jitter=1) if name == "deepinversion" else dict(nz=8, ngf=8, crop_pad=1, bank_size=24, negatives=16,
                                                              proj_dim=16)
    cfg = run.complete(config(name, **{name: dict(steps=3, kd_steps=2, flip=False, pool_size=32, student_crop_pad=1,
                                                  student_flip=False, **own, **section)}))
    cfg.teachers = [dict(workdir="unused")]
    cfg.model.kwargs = dict(width=0.25)
    cfg.train.steps = 2
    cfg.data.batch_size = 8
    return cfg


def _context(cfg, teacher):
    method = get(cfg.algorithm)
    return Context(cfg, method.validate(cfg), [teacher])


def _program(cfg, teacher):
    return get(cfg.algorithm).program(cfg, [teacher], None)


@pytest.mark.parametrize("name", ["deepinversion", "cmi"])
def test_round_runs_fills_pool_and_stays_finite(name, tiny_teacher):
    cfg = _tiny_cfg(name)
    program = _program(cfg, tiny_teacher)
    assert program.data.classes == list(range(10)) and not program.uses_labels
    state = program.init(jax.random.PRNGKey(0), {})
    step = jax.jit(program.step)
    params0 = state.params["student"]
    for i in range(3):
        state, metrics = step(state, [tiny_teacher.variables], {})
        assert all(np.isfinite(float(v)) for v in jax.tree.leaves(metrics)), metrics
    pool = state.buffers["pool"]
    assert int(pool.count) == 24 and int(pool.ptr) == 24
    images = np.asarray(pool.data[:24])
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.std() > 0
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), state.params["student"], params0))
    assert max(moved) > 0
    if name == "cmi":
        bank = state.buffers["bank"]
        assert int(bank.count) == 24       # 3 rounds × 8, capacity 24
        feat_dim = cmi.parts(_context(cfg, tiny_teacher), program.data).feat_dim
        assert bank.data.shape[1] == 2 * feat_dim


def test_synthesis_lowers_the_teacher_loss(tiny_teacher):
    """Within one round, the best batch has a lower DeepInversion loss than the initial noise."""
    cfg = _tiny_cfg("deepinversion", lr=0.1)
    cfg.deepinversion.steps = 30
    ctx = _context(cfg, tiny_teacher)
    data = datafree.teachers_split(ctx)
    net = student_net(ctx, 10)
    state = _program(cfg, tiny_teacher).init(jax.random.PRNGKey(0), {})
    synthesize = deepinversion.synthesizer(ctx, data, net)
    _, _, m = jax.jit(synthesize)(state, [tiny_teacher.variables], jax.random.PRNGKey(1))
    k_x, k_y, _ = jax.random.split(jax.random.PRNGKey(1), 3)
    x0 = jax.random.uniform(k_x, (8, 8, 8, 1))
    y = inversion.random_targets(k_y, 8, 10)
    l0, _ = deepinversion.synthesis_loss(ctx.settings, tiny_teacher, tiny_teacher.variables,
                                         inversion.fixed_student(net, state), x0, y, jax.random.PRNGKey(5), jnp.float32)
    assert float(m["syn_loss"]) < float(l0)


def test_reference_weights_per_method_and_unread_keys_refused():
    di, c = deepinversion.Settings(), cmi.Settings()
    cfg = _tiny_cfg("cmi")
    cfg.cmi.tv = 0.001  # DeepInversion's total variation: CMI does not read it
    with pytest.raises(ConfigError, match="cmi.tv is not a setting"):
        run.validate(cfg)
    assert not hasattr(c, "js_T") and not hasattr(c, "lr") and not hasattr(di, "bank_size")
    assert (di.bn, di.oh, di.adv, di.tv, di.lr, di.js_T, di.T) == (10.0, 1.0, 1.0, 0.001, 0.1, 3.0, 20.0)
    assert (c.bn, c.oh, c.adv, c.cr, c.lr_g, c.tau, c.T) == (1.0, 1.0, 0.5, 0.8, 1e-3, 0.1, 20.0)
    assert (c.bank_size, c.negatives, c.proj_dim) == (40960, 4096, 256)


@pytest.mark.parametrize("name, key, value, needle", [
    ("deepinversion", "no_such_key", 1, "deepinversion.no_such_key is not a setting"),
    ("deepinversion", "jitter", "four", "deepinversion.jitter='four' is not valid"),
    ("deepinversion", "init", "gaussian", "deepinversion.init='gaussian'.*valid choices: normal, uniform"),
    ("deepinversion", "pool_dtype", "float16", "deepinversion.pool_dtype='float16'.*valid choices"),
    ("deepinversion", "pool_size", 4, "deepinversion.pool_size=4 is not valid: it must be >= data.batch_size"),
    ("deepinversion", "kd_steps", 0, "deepinversion.kd_steps=0 is not valid"),
    ("cmi", "no_such_key", 1, "cmi.no_such_key is not a setting"),
    ("cmi", "tau", 0.0, "cmi.tau=0.0 is not valid"),
    ("cmi", "features", "pixels", "cmi.features='pixels'.*valid choices: auto, bn, stages"),
    ("cmi", "generator", "huge", "cmi.generator='huge'.*valid choices"),
    ("cmi", "local_scale", [0.5, 0.25], r"cmi.local_scale=\[0.5, 0.25\] is not valid"),
    ("cmi", "batch_size", 64, "cmi.pool_size=32 is not valid: .*cmi.batch_size \\(64\\)"),
])
def test_bad_settings_are_refused_before_any_work(name, key, value, needle):
    cfg = _tiny_cfg(name)
    cfg[name] = {**cfg[name].to_dict(), key: value}  # as a config file writes it (no ConfigDict type check)
    with pytest.raises(ConfigError, match=needle):
        run.validate(cfg)


@pytest.mark.parametrize("name", ["deepinversion", "cmi"])
def test_exactly_one_teacher(name):
    cfg = _tiny_cfg(name)
    cfg.teachers = [dict(workdir="a"), dict(workdir="b")]
    with pytest.raises(ConfigError, match=f"{name} needs exactly 1 entry in teachers"):
        run.validate(cfg)


def _random_teacher(arch, image_shape):
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
    ctx = _context(cfg, teacher)
    p = cmi.parts(ctx, datafree.teachers_split(ctx))
    bn_channels = sum(a.shape[-1] for a in jax.tree.leaves(teacher.variables["batch_stats"])) // 2  # mean, var
    assert p.feat_dim == (512 if want == "stages" else bn_channels)
    assert bn_channels == 8512  # what the contrastive feature was before (every BatchNorm input)
    head = p.head.init(jax.random.PRNGKey(1), jnp.zeros((1, p.feat_dim)))["params"]
    d = p.feat_dim
    assert sum(a.size for a in jax.tree.leaves(head)) == d * d + d + d * 16 + 16  # Linear D→D, Linear D→proj_dim


def test_cmi_stage_features_need_a_resnet_teacher(tiny_teacher):
    with pytest.raises(ConfigError, match="needs a ResNet teacher"):
        _program(_tiny_cfg("cmi", features="stages"), tiny_teacher)
    ctx = _context(_tiny_cfg("cmi"), tiny_teacher)
    assert cmi.parts(ctx, datafree.teachers_split(ctx)).stages is False  # auto: a small CNN → 'bn'


def test_the_run_state_holds_the_head_with_its_own_optimizer(tiny_teacher):
    """CMI's head is a part of the run's state, trained by its own group; the student's group is the
    student alone."""
    program = _program(_tiny_cfg("cmi"), tiny_teacher)
    state = program.init(jax.random.PRNGKey(0), {})
    assert set(state.params) == {"student", "head"} and set(state.buffers) == {"pool", "bank"}
    assert state.group("student").parts == ("student",) and state.group("head").parts == ("head",)
    new, _ = jax.jit(program.step)(state, [tiny_teacher.variables], {})
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), new.params["head"],
                                         state.params["head"]))
    assert max(moved) > 0
