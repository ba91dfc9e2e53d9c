"""Adaptive amalgamation: label-free teacher calibration and calibrated logit matching."""
import dataclasses

import jax
import numpy as np
import pytest

from jka.errors import ConfigError
from jka.losses.amalgamation import entropy
from jka.methods import common
from jka.methods.amalgamation.adaptive import (calibrate_teachers, head_scale, target_logits, teacher_logits_on,
                                               weights_of, who_knows)
from tests.methods.amalgamation.test_layerwise_cfl import build


def test_calibration_recovers_an_exact_affine_relation_and_keeps_disjoint_teachers_raw():
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(20, 2)) + 5.0               # teacher 0's logits on classes 2, 3
    t0 = np.concatenate([np.full((20, 2), -50.0), shared], 1)          # classes 0..3
    t1 = np.concatenate([(shared - 1.0) / 2.0, np.full((20, 2), -50.0)], 1)  # classes 2..5
    t2 = rng.normal(size=(20, 2))                         # classes 8, 9: shares nothing
    cal = calibrate_teachers([t0, t1, t2], [[0, 1, 2, 3], [2, 3, 4, 5], [8, 9]])
    assert cal[0] == (1.0, 0.0) and cal[2] == (1.0, 0.0)
    np.testing.assert_allclose(cal[1], (2.0, 1.0), rtol=1e-5, atol=1e-5)   # 2·t1 + 1 = t0 on {2, 3}


def test_calibration_uses_only_images_both_teachers_put_in_the_shared_classes_and_chains():
    # teacher 0: classes 0, 1 (1 shared with teacher 1); teacher 1: classes 1, 2 (2 shared with teacher 2);
    # teacher 2: classes 2, 3.
    t0 = np.array([[0.0, 4.0], [0.0, 2.0], [5.0, 1.0], [0.0, 6.0]])
    t1 = np.array([[3.0, 0.0], [1.0, 0.0], [0.0, 9.0], [0.0, 1.0]])
    t2 = np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    cal = calibrate_teachers([t0, t1, t2], [[0, 1], [1, 2], [2, 3]])
    # 0 → 1 on class 1, rows where t0 argmax = class 1 and t1 argmax = class 1: rows 0 and 1
    u, v = np.array([4.0, 2.0]), np.array([3.0, 1.0])
    a1 = u.std() / v.std()
    b1 = u.mean() - a1 * v.mean()
    np.testing.assert_allclose(cal[1], (a1, b1), rtol=1e-6)
    # 1 → 2 on class 2, rows where t1 argmax = class 2 (rows 2 and 3) and t2 argmax = class 2 (all rows)
    u = a1 * np.array([9.0, 1.0]) + b1
    v = np.array([2.0, 3.0])
    a2 = u.std() / v.std()
    np.testing.assert_allclose(cal[2], (a2, u.mean() - a2 * v.mean()), rtol=1e-6)


def test_component_matches_the_selected_calibrated_teachers_raw_logits(teacher_factory, tmp_path):
    dirs = [teacher_factory("a", "small_cnn", 7, width=0.25), teacher_factory("b", "small_cnn", 7, seed=1, width=0.25)]
    classes = ([0, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8, 9])
    calibration = [[1.0, 0.0], [3.0, -1.0]]
    program, ctx, state, teachers = build("adaptive_component", dirs, classes, tmp_path, component=1,
                                          layers=["block3"], calibration=calibration)
    s = ctx.settings
    knowing, index = who_knows(ctx.options["subtask"], [t.classes for t in teachers])
    cal = [calibration[k] for k in knowing]
    # sample 0: A is sure on the sub-task (selected, raw); sample 1: B is sure (selected, 3·t − 1)
    a = np.array([[0, 0, 0, 9.0, 0, 0, 0], [0, 0, 0, 1.0, 0.5, 0, 0]], np.float32)
    b = np.array([[0.2, 0, 0.1, 0, 0, 0, 9.0], [8.0, 0, 0, 0, 0, 0, 9.0]], np.float32)
    sub, w = weights_of(s, knowing, index, [a, b])
    got = np.asarray(target_logits(sub, w, cal))
    np.testing.assert_allclose(got, [[9.0, 0, 0, 0], [3 * 8.0 - 1, -1, -1, -1]], rtol=1e-6)
    # the logit term of the loss is the plain MSE between the component's logits and that target
    # (the step reports the terms at the state before its update; the digits are not augmented)
    batch = program.batches.host_batch(0)
    x = common.preparer(ctx.cfg, program.data, ctx.dtype)(None, batch["image"], augment=False)
    _, terms = jax.jit(program.step)(state, [t.variables for t in teachers], batch)
    net = common.student_net(ctx, len(program.data.classes))
    c, _, _ = net.forward(state.params, state.batch_stats, x, train=True)
    sub, w = weights_of(s, knowing, index, [t(t.variables, x)[0] for t in teachers])
    target = np.asarray(target_logits(sub, w, cal))
    np.testing.assert_allclose(float(terms["logit"]), np.mean((np.asarray(c) - target) ** 2), rtol=1e-4)
    # the average baseline averages the calibrated logits
    sub, w = weights_of(dataclasses.replace(s, selection="average"), knowing, index, [a, b])
    np.testing.assert_allclose(np.asarray(target_logits(sub, w, cal))[0],
                               0.5 * a[0, 3:7] + 0.5 * (3 * b[0, 0:4] - 1), rtol=1e-6)


@pytest.mark.parametrize("entropy_over", ["teacher", "subtask"])
def test_selection_judges_each_teachers_whole_prediction_or_only_the_subtask(teacher_factory, tmp_path,
                                                                            entropy_over):
    """A sees class 0 (outside sub-task 3..6) with a runner-up at 3; B sees its class 9. Over the whole
    prediction (the reference's rule) B is the surer one; restricted to 3..6, A is (B is flat there)."""
    dirs = [teacher_factory("a", "small_cnn", 7, width=0.25), teacher_factory("b", "small_cnn", 7, seed=1, width=0.25)]
    _, ctx, _, teachers = build("adaptive_component", dirs, ([0, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8, 9]),
                                tmp_path, component=1, entropy_over=entropy_over)
    a = np.array([[9.0, 0, 0, 5.0, 0, 0, 0]], np.float32)
    b = np.array([[0, 0, 0, 0, 0, 0, 9.0]], np.float32)
    judged = (a, b) if entropy_over == "teacher" else (a[:, 3:7], b[:, 0:4])
    h = [float(-(p * np.log(p)).sum()) for p in (np.exp(j) / np.exp(j).sum() for j in judged)]
    np.testing.assert_allclose([float(entropy(j)[0]) for j in judged], h, rtol=1e-5)
    _, w = weights_of(ctx.settings, *who_knows(ctx.options["subtask"], [t.classes for t in teachers]), [a, b])
    assert np.asarray(w).tolist() == [[0.0, 1.0] if entropy_over == "teacher" else [1.0, 0.0]]


def test_student_head_scale_is_bounded_and_is_one_at_zero():
    got = np.asarray(head_scale(np.array([0.0, -50.0, 50.0, 0.3], np.float32)))
    b = np.log(4.0)
    np.testing.assert_allclose(got, [1.0, 0.25, 4.0, np.exp(b * np.tanh(0.3 / b))], rtol=1e-5)


def test_component_rejects_a_calibration_of_the_wrong_length(teacher_factory, tmp_path):
    dirs = [teacher_factory("a", "small_cnn", 7, width=0.25), teacher_factory("b", "small_cnn", 7, seed=1, width=0.25)]
    with pytest.raises(ConfigError, match="calibration"):
        build("adaptive_component", dirs, ([0, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8, 9]), tmp_path, component=0,
              calibration=[[1.0, 0.0]])


def test_teacher_logits_on_a_dataset_match_the_teachers(teacher_factory, tmp_path):
    dirs = [teacher_factory("a", "small_cnn", 3, width=0.25), teacher_factory("b", "small_cnn", 4, seed=1, width=0.25)]
    program, ctx, state, teachers = build("adaptive_student", dirs, ([0, 1, 2], [3, 4, 5, 6]), tmp_path)
    data = program.data
    ds = data.train
    outs = teacher_logits_on(teachers, ds, data.mean, data.std, batch_size=100)
    assert [o.shape for o in outs] == [(len(ds), 3), (len(ds), 4)]
    x = common.preparer(ctx.cfg, data, ctx.dtype)(None, ds.images[:5], augment=False)
    np.testing.assert_allclose(outs[1][:5], np.asarray(jax.device_get(teachers[1](teachers[1].variables, x)[0])),
                               rtol=1e-4, atol=1e-5)
