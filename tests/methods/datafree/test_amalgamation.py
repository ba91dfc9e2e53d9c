"""Data-free amalgamation: teacher-from-block runner, chosen weights, phase steps, regroup."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import models, run
from jka.errors import ConfigError
from jka.losses import priors
from jka.methods.api import Context
from jka.methods.datafree.amalgamation import networks, objectives, phases
from jka.settings import defaults, read
from jka.train.export import export_model, load_model
from jka.train.teachers import Teacher


def make_teacher(classes, width=0.25, seed=0):
    m = models.create("small_cnn", len(classes), width=width)
    v = m.init(jax.random.PRNGKey(seed), jnp.zeros((1, 8, 8, 1)))
    v = {"params": v["params"], "batch_stats": v["batch_stats"]}
    return Teacher("small_cnn", m, v, list(classes), {"width": width})


def settings(**given):
    """The section read as a run reads it (gamma chosen when None)."""
    return phases.resolved(read(phases.Settings, given, "datafree_amalgamation"))


def test_small_cnn_from_block_matches_module():
    t = make_teacher(range(5), width=0.5)
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 1))
    logits, feats = t.module.apply(t.variables, x, train=False)
    got, pooled, _ = networks.teacher_from(t, t.variables, x, 1)
    np.testing.assert_allclose(np.asarray(got), np.asarray(logits), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(pooled), np.asarray(feats["pooled"]), rtol=1e-4, atol=1e-5)
    # from block 3's input (= max-pooled block-2 output) gives the same logits
    b3_in = jax.lax.reduce_window(feats["block2"], -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    np.testing.assert_allclose(np.asarray(networks.teacher_from(t, t.variables, b3_in, 3)[0]), np.asarray(logits),
                               rtol=1e-4, atol=1e-5)
    # the head alone (from block 3's output) is the teacher's linear layer on the pooled map
    lin = t.variables["params"]["linear"]
    np.testing.assert_allclose(np.asarray(networks.teacher_from(t, t.variables, feats["block3"], 4)[0]),
                               np.asarray(feats["pooled"] @ lin["kernel"] + lin["bias"]), rtol=1e-4, atol=1e-5)
    assert networks.small_cnn_input_shapes((8, 8, 1), 0.5) == [(8, 8, 1), (8, 8, 16), (4, 4, 32)]


def _np_ce(logits, target_logits):
    p = np.asarray(jax.nn.softmax(target_logits))
    return -np.mean(np.sum(p * np.asarray(jax.nn.log_softmax(logits)), -1))


def test_chosen_weights_and_gan_loss_composition():
    s = settings()
    assert (s.alpha, s.beta, s.gamma, s.inter, s.stream1, s.stream2) == (0.1, 5.0, 0.0, 1.0, 1.0, 0.5)
    assert (s.joint, s.bn, s.train_heads, s.assemble_steps) == (False, 0.0, True, 0)  # the paper's method
    assert settings(multilabel=True).gamma == 0.1
    rng = np.random.default_rng(0)
    ys = [jnp.asarray(rng.normal(size=(6, 5)), jnp.float32) for _ in range(2)]
    pooled = [jnp.asarray(rng.normal(size=(6, 7)), jnp.float32) for _ in range(2)]
    inter = [[jnp.asarray(rng.normal(size=(6, 5)), jnp.float32) for _ in range(2)]]   # one group, two teachers
    idx = [np.array([0, 1, 2, 3, 4]), np.array([0, 1, 2, 3, 4])]
    s = dataclasses.replace(s, gamma=0.3, bn=2.0)
    l_bn = jnp.asarray(0.7)
    act = np.mean([-np.abs(np.asarray(f)).mean() for f in pooled])
    # per-teacher terms (joint off): every image is pushed to be a confident class of each teacher
    s = dataclasses.replace(s, joint=False)
    loss, terms = objectives.gan_loss(s, ys, pooled, inter, idx, l_bn)
    oh = np.mean([float(priors.one_hot(y)) for y in ys])
    ie = np.mean([float(priors.balance(y)) for y in ys])
    dis = np.mean([float(jnp.abs(jax.nn.softmax(y)).mean()) for y in ys])     # = 1/5 for softmax
    inter_ce = np.mean([_np_ce(inter[0][m], ys[m]) for m in range(2)])
    want = oh + 0.1 * act + 5.0 * ie + 0.3 * dis + 2.0 * 0.7 + 1.0 * inter_ce
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(dis, 0.2, rtol=1e-6)   # why γ = 0 for multi-class teachers
    # joint (default): the same terms over the 10 union logits [teacher 0 | teacher 1]
    s = dataclasses.replace(s, joint=True)
    loss, terms = objectives.gan_loss(s, ys, pooled, inter, idx, l_bn)
    u = np.concatenate([np.asarray(y) for y in ys], 1)
    p = np.exp(u - u.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    oh = -np.mean(np.log(p[np.arange(6), u.argmax(1)]))
    pbar = p.mean(0)
    ie = np.sum(pbar * np.log(pbar))
    inter_ce = _np_ce(jnp.concatenate(inter[0], 1), jnp.asarray(u))
    want = oh + 0.1 * act + 5.0 * ie + 0.3 * 0.1 + 2.0 * 0.7 + 1.0 * inter_ce
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(float(terms["ie"]), ie, rtol=1e-5)


def test_claimed_bn_statistics_is_the_weighted_r_bn():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(4, 2, 2, 3)).astype(np.float32)
    mu_run, var_run = np.array([0.1, -0.2, 0.3], np.float32), np.array([1.0, 0.5, 2.0], np.float32)
    w = np.array([1.0, 0.0, 0.5, 0.5], np.float32)
    sown, running = {"bn1": {"input": (jnp.asarray(f),)}}, {"bn1": {"mean": mu_run, "var": var_run}}
    got = float(priors.bn_statistics(sown, running, jnp.asarray(w)))
    ww = np.repeat(w, 4)                                  # one weight per pixel of each image
    x = f.reshape(-1, 3)
    mu = (ww[:, None] * x).sum(0) / ww.sum()
    var = (ww[:, None] * (x - mu) ** 2).sum(0) / ww.sum()
    want = np.linalg.norm(mu - mu_run) + np.linalg.norm(var - var_run)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # all weights 1: the plain R_bn (batch mean, biased variance)
    got1 = float(priors.bn_statistics(sown, running, jnp.ones(4)))
    want1 = np.linalg.norm(x.mean(0) - mu_run) + np.linalg.norm(x.var(0) - var_run)
    np.testing.assert_allclose(got1, want1, rtol=1e-5)
    np.testing.assert_allclose(float(priors.bn_statistics(sown, running)), want1, rtol=1e-5)
    # which teacher claims an image: its share of the union softmax
    ys = [jnp.asarray([[5.0, 0.0], [0.0, 0.0]]), jnp.asarray([[0.0, 0.0], [0.0, 0.0]])]
    c = np.asarray(objectives.claims(ys, [np.array([0, 1]), np.array([0, 1])]))
    e = np.exp(5.0)
    np.testing.assert_allclose(c, [[(e + 1) / (e + 3), 2 / (e + 3)], [0.5, 0.5]], rtol=1e-6)


def test_reproduce_loss_union_term_sees_an_offset_between_heads():
    rng = np.random.default_rng(2)
    targets = [jnp.asarray(rng.normal(size=(3, 5)), jnp.float32) for _ in range(2)]
    s = settings(joint=True)
    exact = objectives.reproduce_loss(s, targets, targets)
    shifted = [targets[0], targets[1] - 4.0]     # teacher 1's head 4 lower: loses the joint argmax
    s_pt = settings(joint=False)
    # per-teacher CE alone cannot see the offset ...
    np.testing.assert_allclose(float(objectives.reproduce_loss(s_pt, shifted, targets)),
                               float(objectives.reproduce_loss(s_pt, targets, targets)), rtol=1e-6)
    # ... the union CE does; and it is the CE over the 10 concatenated labels
    u_t, u_s = jnp.concatenate(targets, 1), jnp.concatenate(shifted, 1)
    want = sum(_np_ce(t, t) for t in targets) + _np_ce(u_s, u_t)
    np.testing.assert_allclose(float(objectives.reproduce_loss(s, shifted, targets)), want, rtol=1e-5)
    assert float(objectives.reproduce_loss(s, shifted, targets)) > float(exact) + 0.1


def _cfg(tmp_path, **amal):
    """The paper's variant at toy sizes: 2 GAN steps, 2 per dual block, batch 8."""
    section = dict(gan_steps=2, dual_steps=2, nz=8, ngf=8, batch_size=8, **amal)
    return run.load("datafree/digits_amalgamation:variant=paper",
                    ["data.batch_size=8"] + [f"datafree_amalgamation.{k}={v!r}" for k, v in section.items()])


def _ctx(cfg, teachers, **options):
    return Context(cfg, phases.GAN.read(cfg), teachers, None, options)


def _export(out, path):
    export_model(path, out.arch, out.num_classes, out.variables, **out.info)


@pytest.mark.parametrize("requested", [None, [7, 1, 3]])
def test_phases_run_finite_and_regroup_is_the_dual_prediction(tmp_path, requested):
    teachers = [make_teacher(range(5), 0.25, 0), make_teacher(range(5, 10), 0.25, 1)]
    tv = [t.variables for t in teachers]
    cfg = _cfg(tmp_path)
    cfg.data.classes = requested
    gan = phases.GAN.program(cfg, teachers, None)
    want_classes = list(range(10)) if requested is None else [1, 3, 7]  # teacher order
    assert gan.data.classes == want_classes
    n_out = len(want_classes)
    st = gan.init(jax.random.PRNGKey(0), {})
    step = jax.jit(gan.step)
    for _ in range(2):
        st, m = step(st, tv, {})
        assert all(np.isfinite(float(v)) for v in jax.tree.leaves(m)), m
    shapes = [o.shape[1:] for o in phases.generate(phases.parts(_ctx(cfg, teachers)), st.variables("generator"),
                                                   jnp.zeros((2, 8)), False)[0]]
    assert shapes == [(4, 4, 16), (8, 8, 8), (8, 8, 1)]          # inputs of teacher blocks 3, 2, 1
    _export(gan.export(st), str(tmp_path / "gan"))
    gan_vars, _ = load_model(str(tmp_path / "gan"))
    prev_blocks = None
    for b in (1, 2, 3):
        ctx = _ctx(cfg, teachers, block=b, gan=gan_vars, prev=prev_blocks)
        dual, pieces = phases.program(ctx, "dfa_dual", phases.dual(ctx)), phases.dual(ctx)
        ds = dual.init(jax.random.PRNGKey(b), {})
        ds, m = jax.jit(dual.step)(ds, tv, {})
        assert all(np.isfinite(float(v)) for v in jax.tree.leaves(m)), m
        out = dual.export(ds)
        prev = str(tmp_path / f"dual_{b}")
        _export(out, prev)
        prev_blocks = out.variables.get("blocks")
    assert out.arch == "small_cnn" and out.num_classes == n_out
    assert set(ds.params["heads"]) == {"t0", "t1"}     # per-teacher heads train with block B
    v, info = load_model(prev)
    student = models.create("small_cnn", n_out, width=0.25)
    imgs = jax.random.uniform(jax.random.PRNGKey(9), (5, 8, 8, 1))
    want = pieces.predict(ds, imgs)
    got, _ = student.apply(v, pieces.parts.prepare(None, imgs, augment=False), train=False)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)
    # phase 4: the regrouped student (train.init_from), trained end to end on generated images
    ctx = _ctx(cfg, teachers, gan=gan_vars)
    asm, pieces = phases.program(ctx, "dfa_assemble", phases.assemble(ctx)), phases.assemble(ctx)
    st = asm.start_from(asm.init(jax.random.PRNGKey(4), {}), v, info)
    np.testing.assert_allclose(np.asarray(pieces.predict(st, imgs)), np.asarray(want), rtol=1e-4, atol=1e-4)
    st, m = jax.jit(asm.step)(st, tv, {})
    assert np.isfinite(float(m["loss"]))
    out = asm.export(st)
    got, _ = student.apply(out.variables, pieces.parts.prepare(None, imgs, augment=False), train=False)
    np.testing.assert_allclose(np.asarray(got), np.asarray(pieces.predict(st, imgs)), rtol=1e-4, atol=1e-4)


def test_requested_classes_must_come_from_the_teachers(tmp_path):
    teachers = [make_teacher(range(5), 0.25, 0), make_teacher(range(5, 8), 0.25, 1)]
    cfg = _cfg(tmp_path)
    cfg.data.classes = [1, 9]
    with pytest.raises(ConfigError, match=r"asks for \[9\]"):
        phases.GAN.program(cfg, teachers, None)


def test_rejects_other_architectures(tmp_path):
    m = models.create("vgg8_bn", 5)
    t = Teacher("vgg8_bn", m, {}, list(range(5)))
    with pytest.raises(ConfigError):
        phases.GAN.program(_cfg(tmp_path), [t], None)


def test_job_runs_its_phases_exports_the_student_and_evaluates_its_final_phase(tmp_path):
    teachers = [make_teacher(range(5), 0.25, 0), make_teacher(range(5, 10), 0.25, 1)]
    cfg = _cfg(tmp_path, assemble_steps=2)
    for k, (spec, t) in enumerate(zip(cfg.teachers, teachers)):
        export_model(str(tmp_path / f"t{k}" / "model"), "small_cnn", 5, t.variables, kwargs={"width": 0.25},
                     classes=list(t.classes))
        spec["workdir"] = str(tmp_path / f"t{k}")
    cfg.model.kwargs = {"width": 0.25}
    cfg.train.update(progress=False, log_every=1)
    summary = run.train(cfg, str(tmp_path / "job"))
    assert set(summary["phases"]) == {"gan", "dual_1", "dual_2", "dual_3", "assemble"}
    assert summary["step"] == 2 + 3 * 2 + 2 and summary["labels_used"] is False
    v, info = load_model(str(tmp_path / "job"))
    assert info["arch"] == "small_cnn" and info["num_classes"] == 10
    ev = run.evaluate(cfg, str(tmp_path / "job"))
    assert ev["step"] == 2 and ev["eval"]["accuracy"] == pytest.approx(summary["eval"]["accuracy"])


def test_digits_config_names_its_variants_and_paper_is_the_librarys_defaults():
    paper, ours = run.load("datafree/digits_amalgamation:variant=paper"), run.load("datafree/digits_amalgamation")
    keys = ("joint", "bn", "assemble_steps")
    library = defaults(phases.Settings)
    assert [paper.datafree_amalgamation[k] for k in keys] == [library[k] for k in keys] == [False, 0.0, 0]
    assert [ours.datafree_amalgamation[k] for k in keys] == [True, 5.0, 600]
    assert {k: v for k, v in ours.datafree_amalgamation.items() if k not in keys} == \
        {k: v for k, v in paper.datafree_amalgamation.items() if k not in keys}
