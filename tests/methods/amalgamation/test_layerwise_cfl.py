"""Each amalgamation method's compiled step runs and lowers its loss; block shapes; selection."""
from functools import partial

import jax
import numpy as np
import pytest

from jka import methods, run
from jka.configs.common import config
from jka.errors import ConfigError
from jka.methods import common
from jka.methods.amalgamation import adaptive, layerwise, parts
from jka.methods.api import Context
from jka.run import resolve_teachers

PHASES = {"adaptive_component": adaptive.COMPONENT, "adaptive_student": adaptive.STUDENT}


def build(name, teacher_dirs, classes, tmp_path, image_size=8, component=None, calibration=None, **section):
    """A method by name, or one of adaptive amalgamation's phases (``adaptive_component`` with
    ``component`` (the sub-task's index) and ``calibration``; ``adaptive_student``): (program, its
    context, the first state, teachers)."""
    key = "adaptive" if name in PHASES else name
    cfg = run.complete(config(key, **{key: section}))
    cfg.teachers = [dict(workdir=d, classes=c) for d, c in zip(teacher_dirs, classes)]
    cfg.data.update(image_size=image_size, batch_size=32)
    cfg.train.steps = 30
    cfg.model.kwargs = {"width": 0.25}
    cfg.optim.update(name="adam", lr=3e-3, schedule="constant")
    teachers = resolve_teachers(cfg, str(tmp_path))
    method = PHASES.get(name) or methods.get(name)
    options = {}
    if name == "adaptive_component":
        subtask = adaptive.subtasks_of(method.read(cfg), [t.classes for t in teachers])[component]
        options = dict(subtask=subtask, calibration=calibration or [(1.0, 0.0)] * len(teachers))
    ctx = Context(cfg, method.read(cfg), teachers, None, options)
    program = method.build(ctx)
    state = program.init(jax.random.PRNGKey(0), program.batches.host_batch(0))
    return program, ctx, state, teachers


def run_steps(program, state, teachers, n):
    step = jax.jit(program.step)
    tv = [t.variables for t in teachers]
    out = []
    for i in range(n):
        state, m = step(state, tv, program.batches.host_batch(i % 2))  # two batches, revisited: loss must fall
        out.append(jax.device_get(m))
    return state, out


def student_logits(program, ctx, state, images):
    net = common.student_net(ctx, len(program.data.classes))
    return common.predictor(net, common.preparer(ctx.cfg, program.data, ctx.dtype))(state, images)


HALVES = ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])


def test_layerwise_blocks_shapes_step_and_loss_decreases(teacher_factory, tmp_path):
    dirs = [teacher_factory(f"t{k}", "small_cnn", 5, seed=k, width=0.5) for k in range(2)]
    program, ctx, state, teachers = build("layerwise", dirs, HALVES, tmp_path, layers=["block1", "block2", "block3"])
    assert program.data.classes == list(range(10)) and program.uses_labels is False
    blocks = state.params["blocks"]
    # student small_cnn(0.25): 8/16/32 channels; two teachers small_cnn(0.5): 16/32/64 each
    for name, cs, ct in [("block1", 8, 16), ("block2", 16, 32), ("block3", 32, 64)]:
        b = blocks[f"block_{name}"]
        assert b["enc"]["kernel"].shape == (2 * ct, cs)
        assert b["fam"]["kernel"].shape == (cs, cs)
        assert b["dec"]["kernel"].shape == (cs, 2 * ct)
    state, ms = run_steps(program, state, teachers, 25)
    losses = [float(m["loss"]) for m in ms]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    assert student_logits(program, ctx, state, program.batches.host_batch(0)["image"]).shape == (32, 10)


def test_layerwise_blockwise_schedule_masks(teacher_factory, tmp_path):
    dirs = [teacher_factory(f"t{k}", "small_cnn", 5, seed=k, width=0.25) for k in range(2)]
    program, _, state, teachers = build("layerwise", dirs, HALVES, tmp_path, layers=["block1", "block2", "block3"],
                                        schedule="blockwise")
    w0, kd0 = layerwise.stage_masks(0, 3, 30, "blockwise")
    w1, kd1 = layerwise.stage_masks(12, 3, 30, "blockwise")
    w2, kd2 = layerwise.stage_masks(29, 3, 30, "blockwise")
    np.testing.assert_array_equal(w0, [1, 0, 0])
    np.testing.assert_array_equal(w1, [1, 1, 0])
    np.testing.assert_array_equal(w2, [1, 1, 1])
    assert (float(kd0), float(kd1), float(kd2)) == (0.0, 0.0, 1.0)
    _, ms = run_steps(program, state, teachers, 2)
    assert float(ms[0]["kd"]) > 0 and np.isfinite(float(ms[1]["loss"]))


def test_cfl_heterogeneous_teachers_shapes_and_loss_decreases(teacher_factory, tmp_path):
    dirs = [teacher_factory("t0", "small_cnn", 5, width=0.5), teacher_factory("t1", "wrn16_1", 5, seed=1)]
    program, _, state, teachers = build("cfl", dirs, HALVES, tmp_path, layers=["block3", "pooled"],
                                        weights=(1.0, 10.0, 10.0))
    g = state.params["blocks"]["group_block3"]
    ch = 32 // 4  # student block3 has 32 channels → ch = C_s/4
    assert g["align_s"]["conv"]["kernel"].shape == (1, 1, 32, ch)
    assert g["align_t0"]["conv"]["kernel"].shape == (1, 1, 64, ch)   # small_cnn(0.5) block3
    assert g["align_t1"]["conv"]["kernel"].shape == (1, 1, 64, ch)   # wrn16_1 block3
    assert g["extractor"]["res1"]["conv1"]["kernel"].shape == (3, 3, ch, ch)
    assert g["dec1"]["kernel"].shape == (ch, 64)
    v = state.params["blocks"]["group_pooled"]
    assert v["align_s"]["fc"]["kernel"].shape == (32, ch) and "fc2" in v["extractor"]
    state, ms = run_steps(program, state, teachers, 25)
    losses = [float(m["loss"]) for m in ms]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    assert float(ms[-1]["amal"]) >= 0.0


def test_cfl_rejects_unknown_feature(teacher_factory, tmp_path):
    dirs = [teacher_factory(f"t{k}", "small_cnn", 5, seed=k, width=0.25) for k in range(2)]
    with pytest.raises(ConfigError, match="no feature 'layer9'"):
        build("cfl", dirs, HALVES, tmp_path, layers=["layer9"])


def test_subtasks_from_overlapping_teachers():
    got = adaptive.derive_subtasks([[0, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8, 9]])
    assert got == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    with pytest.raises(ConfigError, match="repeat"):
        adaptive.subtasks_of(adaptive.Settings(subtasks=[[0, 1], [1, 2]]), [[0, 1, 2]])


def test_adaptive_component_selects_least_entropy_teacher_and_learns(teacher_factory, tmp_path):
    dirs = [teacher_factory("a", "small_cnn", 7, width=0.25), teacher_factory("b", "small_cnn", 7, seed=1, width=0.25)]
    classes = ([0, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8, 9])
    program, ctx, state, teachers = build("adaptive_component", dirs, classes, tmp_path, component=1,
                                          layers=["block3"])
    knowing, index = adaptive.who_knows(ctx.options["subtask"], [t.classes for t in teachers])
    assert program.data.classes == [3, 4, 5, 6] and knowing == [0, 1]
    assert index == {0: [3, 4, 5, 6], 1: [0, 1, 2, 3]}
    # Constructed logits: on the sub-task, sample 0 is sure for A, sample 1 is sure for B.
    a = np.array([[0, 0, 0, 9.0, 0, 0, 0], [0, 0, 0, 1.0, 0.5, 0, 0]], np.float32)
    b = np.array([[0.2, 0, 0.1, 0, 0, 0, 9.0], [8.0, 0, 0, 0, 0, 0, 9.0]], np.float32)  # B: idx 0..3 = classes 3..6
    _, w = adaptive.weights_of(ctx.settings, knowing, index, [a, b])
    np.testing.assert_array_equal(np.asarray(w), [[1, 0], [0, 1]])
    state, ms = run_steps(program, state, teachers, 20)
    losses = [float(m["loss"]) for m in ms]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    assert float(ms[-1]["select_teacher0"]) + float(ms[-1]["select_teacher1"]) == pytest.approx(1.0)


def test_adaptive_student_scales_fold_into_export(teacher_factory, tmp_path):
    dirs = [teacher_factory("c0", "small_cnn", 3, width=0.25),
            teacher_factory("c1", "small_cnn", 4, seed=1, width=0.25)]
    program, ctx, state, teachers = build("adaptive_student", dirs, ([0, 1, 2], [3, 4, 5, 6]), tmp_path,
                                          layers=["block3"])
    state, ms = run_steps(program, state, teachers, 5)
    blocks = dict(state.params["blocks"])
    blocks["log_scale"] = np.array([0.5, -0.3], np.float32)
    state = state.replace(params={**state.params, "blocks": blocks})
    images = program.batches.host_batch(0)["image"]
    expected = np.asarray(adaptive.scaled(student_logits(program, ctx, state, images), blocks["log_scale"],
                                          np.repeat([0, 1], [3, 4])))
    out = program.export(state)
    net = common.student_net(ctx, out.num_classes)
    x = common.preparer(ctx.cfg, program.data, ctx.dtype)(None, images, augment=False)
    got, _ = net.module.apply(out.variables, x, train=False)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-4)


def test_layerwise_loss_equals_its_formula(teacher_factory, tmp_path):
    """w0·kd + w1·Σ_ℓ mean(fam − r)² + w2·Σ_ℓ Σ_k mean(dec_k(r) − F_tk)², recomputed in NumPy."""
    dirs = [teacher_factory(f"t{k}", "small_cnn", 5, seed=k, width=0.5) for k in range(2)]
    w = (0.5, 2.0, 3.0)
    program, ctx, state, teachers = build("layerwise", dirs, HALVES, tmp_path, layers=["block2", "block3"], weights=w)
    s = ctx.settings
    net = common.student_net(ctx, 10)
    module = layerwise.blocks(s.layers, *parts.shapes(ctx, net, program.data, partial(layerwise.gather, layers=s.layers)))
    x = jax.random.normal(jax.random.PRNGKey(3), (4, 8, 8, 1))
    t_out = parts.teacher_outputs(teachers, [t.variables for t in teachers], x)
    loss, (_, terms) = layerwise.objective(s, net, module, ctx.steps)(state.params, state.batch_stats, t_out, x, 0)

    logits, s_feats, _ = net.forward(state.params, state.batch_stats, x, train=True)
    dense = lambda a, p: np.asarray(a, np.float64) @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"])
    l_amal = l_rec = 0.0
    for name in ("block2", "block3"):
        fs = np.asarray(s_feats[name])
        fts = [np.asarray(f[name]) for _, f in t_out]
        assert all(f.shape[:3] == fs.shape[:3] for f in fts)  # same spatial size: no resizing involved
        p = state.params["blocks"][f"block_{name}"]
        r = dense(np.concatenate(fts, -1), p["enc"])
        l_amal += np.mean((dense(fs, p["fam"]) - r) ** 2)
        rec = dense(r, p["dec"])
        c = fts[0].shape[-1]
        l_rec += np.mean((rec[..., :c] - fts[0]) ** 2) + np.mean((rec[..., c:] - fts[1]) ** 2)
    t = np.concatenate([np.asarray(o, np.float64) for o, _ in t_out], -1) / s.T
    sl = np.asarray(logits, np.float64) / s.T
    log_pt = t - np.log(np.exp(t).sum(-1, keepdims=True))
    log_ps = sl - np.log(np.exp(sl).sum(-1, keepdims=True))
    l_kd = s.T ** 2 * np.mean(np.sum(np.exp(log_pt) * (log_pt - log_ps), -1))
    np.testing.assert_allclose([terms["kd"], terms["amal"], terms["rec"]], [l_kd, l_amal, l_rec], rtol=2e-5)
    np.testing.assert_allclose(loss, w[0] * l_kd + w[1] * l_amal + w[2] * l_rec, rtol=2e-5)
