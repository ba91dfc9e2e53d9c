"""Data-free amalgamation (§3.5): teacher-from-block runner, chosen weights, phase steps, regroup."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jka import algorithms, models
from jka.algorithms import datafree_amalgamation as dfa
from jka.errors import ConfigError
from jka.losses import priors
from jka.train.checkpoint import export_model, load_model

from conftest import make_teacher


def test_small_cnn_from_block_matches_module():
    t = make_teacher(range(5), width=0.5)
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 1))
    logits, feats = t.module.apply(t.variables, x, train=False)
    got, pooled = dfa.small_cnn_from(t.variables, x, 1)
    np.testing.assert_allclose(np.asarray(got), np.asarray(logits), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(pooled), np.asarray(feats["pooled"]), rtol=1e-4, atol=1e-5)
    # from block 3's input (= max-pooled block-2 output) gives the same logits
    b3_in = jax.lax.reduce_window(feats["block2"], -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    np.testing.assert_allclose(np.asarray(dfa.small_cnn_from(t.variables, b3_in, 3)[0]), np.asarray(logits),
                               rtol=1e-4, atol=1e-5)
    assert dfa.small_cnn_input_shapes((8, 8, 1), 0.5) == [(8, 8, 1), (8, 8, 16), (4, 4, 32)]


def test_chosen_weights_and_gan_loss_composition():
    s = dfa.settings(ml_collections.ConfigDict({"amalgamation": {}}))
    assert (s.alpha, s.beta, s.gamma, s.inter, s.stream1, s.stream2) == (0.1, 5.0, 0.0, 1.0, 1.0, 0.5)
    assert dfa.settings(ml_collections.ConfigDict({"amalgamation": {"multilabel": True}})).gamma == 0.1
    rng = np.random.default_rng(0)
    ys = [jnp.asarray(rng.normal(size=(6, 5)), jnp.float32) for _ in range(2)]
    pooled = [jnp.asarray(rng.normal(size=(6, 7)), jnp.float32) for _ in range(2)]
    inter = [(0, jnp.asarray(rng.normal(size=(6, 5)), jnp.float32))]
    s.gamma = 0.3
    loss, terms = dfa.gan_loss(s, ys, pooled, inter)
    oh = np.mean([float(priors.one_hot(y)) for y in ys])
    act = np.mean([-np.abs(np.asarray(f)).mean() for f in pooled])
    ie = np.mean([float(priors.balance(y)) for y in ys])
    dis = np.mean([float(jnp.abs(jax.nn.softmax(y)).mean()) for y in ys])     # = 1/5 for softmax
    p0 = np.asarray(jax.nn.softmax(ys[0]))
    inter_ce = -np.mean(np.sum(p0 * np.asarray(jax.nn.log_softmax(inter[0][1])), -1))
    want = oh + 0.1 * act + 5.0 * ie + 0.3 * dis + 1.0 * inter_ce
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(dis, 0.2, rtol=1e-6)   # why γ = 0 for multi-class teachers


def _cfg(tmp_path, **amal):
    cfg = dfa.digits_amalgamation_config(gan_steps=2, dual_steps=2)
    cfg.data.batch_size = 8
    cfg.amalgamation.update(dict(nz=8, ngf=8, batch_size=8, **amal))
    return cfg


def test_phases_run_finite_and_regroup_is_the_dual_prediction(tmp_path):
    teachers = [make_teacher(range(5), 0.25, 0), make_teacher(range(5, 10), 0.25, 1)]
    tv = [t.variables for t in teachers]
    cfg = _cfg(tmp_path)
    gan = algorithms.get("dfa_gan")(cfg, teachers)
    assert gan.student_classes == list(range(10))
    st = gan.init(jax.random.PRNGKey(0), {})
    step = jax.jit(gan.train_step)
    for _ in range(2):
        st, m = step(st, tv, {})
        assert all(np.isfinite(float(v)) for v in jax.tree.leaves(m)), m
    shapes = [o.shape[1:] for o in gan.generate({"params": st.params["generator"], "batch_stats": st.batch_stats},
                                                jnp.zeros((2, 8)), False)[0]]
    assert shapes == [(4, 4, 16), (8, 8, 8), (8, 8, 1)]          # inputs of teacher blocks 3, 2, 1
    arch, n, variables, meta = gan.export(st)
    export_model(str(tmp_path / "gan"), arch, n, variables, **meta)
    prev = ""
    for b in (1, 2, 3):
        cfg.amalgamation.update(dict(block=b, gan_dir=str(tmp_path / "gan"), prev_dir=prev))
        dual = algorithms.get("dfa_dual")(cfg, teachers)
        ds = dual.init(jax.random.PRNGKey(b), {})
        ds, m = jax.jit(dual.train_step)(ds, tv, {})
        assert all(np.isfinite(float(v)) for v in jax.tree.leaves(m)), m
        arch, n, variables, meta = dual.export(ds)
        prev = str(tmp_path / f"dual_{b}")
        export_model(prev, arch, n, variables, **meta)
    assert arch == "small_cnn" and n == 10
    v, info = load_model(prev)
    student = models.create("small_cnn", 10, width=0.25)
    imgs = jax.random.uniform(jax.random.PRNGKey(9), (5, 8, 8, 1))
    want = dual.predict(ds, imgs)
    got, _ = student.apply(v, dual.prepare(None, imgs, augment=False), train=False)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


def test_rejects_other_architectures(tmp_path):
    from jka.algorithms.base import Teacher
    m = models.create("vgg8_bn", 5)
    t = Teacher("vgg8_bn", m, {}, list(range(5)))
    with pytest.raises(ConfigError):
        algorithms.get("dfa_gan")(_cfg(tmp_path), [t])
