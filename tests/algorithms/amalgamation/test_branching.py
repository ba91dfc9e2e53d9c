"""Task branching end to end on tiny scenes, the in-step branch draw, and the NYUv2 config."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import config as config_lib
from jka.train.teachers import Teacher
from jka import run
from jka.algorithms.amalgamation.branching import POINTS_FILE, BranchyDistill
from jka.recipes.amalgamation import scenes_branching
from jka.algorithms.amalgamation.dense import DenseSupervised
from jka.models import create
from jka.models.segnet import NUM_POINTS
from jka.train.export import export_model
from jka.run import evaluate, train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TINY = dict(train_size=48, test_size=24, batch_size=8)


def tiny_job(workdir, steps=6):
    """The embedded config, shrunk; its teachers are exported untrained (from init) into the job's
    workdir so the test spends its time on the three phases (teachers from their configs are
    jka.train.teachers' shared path)."""
    cfg = scenes_branching(steps=steps, teacher_steps=2, width=0.0625, **TINY)
    cfg.train.progress = False
    cfg.train.log_every = 3
    x = jnp.zeros((1, 32, 32, 3))
    for k, (spec, n) in enumerate(zip(cfg.teachers, (5, 1))):
        net = create("segnet", n, width=0.0625)
        variables = net.init(jax.random.PRNGKey(k), x)
        export_model(os.path.join(workdir, spec["workdir"], "model"), "segnet", n,
                     {"params": variables["params"], "batch_stats": variables["batch_stats"]},
                     classes=list(range(n)), kwargs={"width": 0.0625})
    return cfg


def test_job_writes_summary_with_ratios_points_and_an_evaluable_student(tmp_path):
    cfg = tiny_job(str(tmp_path))
    summary = train(cfg, str(tmp_path))
    on_disk = json.load(open(tmp_path / "summary.json"))
    ev = on_disk["eval"]
    for key in ("miou_ratio", "rmse_ratio", "seg_miou", "seg_pixel_acc", "teacher_seg_miou", "depth_rmse",
                "depth_abs_rel", "depth_delta1", "teacher_depth_rmse"):
        assert key in ev and np.isfinite(ev[key]), key
    assert ev["miou_ratio"] == pytest.approx(ev["seg_miou"] / ev["teacher_seg_miou"])
    assert ev["rmse_ratio"] == pytest.approx(ev["depth_rmse"] / ev["teacher_depth_rmse"])
    assert on_disk["labels_used"] is False and on_disk["algorithm"] == "branching"
    # Phase 2 logged a loss per candidate point per task and picked a point from them.
    losses = on_disk["branch_point_losses"]
    assert set(losses) == {"seg", "depth"} and all(len(v) == NUM_POINTS for v in losses.values())
    points = json.load(open(tmp_path / POINTS_FILE))["points"]
    assert [on_disk["branch_points"][t] for t in ("seg", "depth")] == points
    # Phase 1 (random points per step) compiled its step once.
    assert json.load(open(tmp_path / "search" / "summary.json"))["step_compilations"] in (1, None)
    # The exported student carries its branch points; `jka eval` on the job's workdir reproduces the eval.
    info = json.load(open(tmp_path / "model" / "model.json"))
    assert info["arch"] == "branchy_segnet" and info["kwargs"]["branch_points"] == points
    again = evaluate(cfg, str(tmp_path))
    assert again["eval"]["seg_miou"] == pytest.approx(ev["seg_miou"], abs=1e-6)
    assert again["eval"]["depth_rmse"] == pytest.approx(ev["depth_rmse"], rel=1e-5)
    assert summary["step"] == cfg.train.steps - (cfg.train.steps // 2)


def test_traced_branch_point_equals_the_static_branch():
    """Phase 1 draws points inside the compiled step with lax.switch; each traced point must give
    exactly the network that the Python point builds."""
    width = 0.0625
    student = create("branchy_segnet", 6, width=width, task_channels=(5, 1))
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 3))
    v = student.init(jax.random.PRNGKey(1), x, method="init_all")
    algo = BranchyDistill.__new__(BranchyDistill)
    algo.student = student
    algo.tasks = [dict(name="seg", kind="segmentation", channels=5), dict(name="depth", kind="depth", channels=1)]
    traced = jax.jit(lambda p, q: algo.forward(v["params"], v["batch_stats"], x, [p, q], train=False)[0])
    for p, q in [(0, 5), (3, 1), (5, 0)]:
        static, _ = algo.forward(v["params"], v["batch_stats"], x, [p, q], train=False)
        got = traced(jnp.int32(p), jnp.int32(q))
        for a, b in zip(got, static):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # Different points are different networks.
    a = algo.forward(v["params"], v["batch_stats"], x, [0, 0], train=False)[0][0]
    b = algo.forward(v["params"], v["batch_stats"], x, [5, 0], train=False)[0][0]
    assert not np.allclose(a, b)


def test_nyuv2_config_builds_on_a_tiny_generated_npz(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        seg = rng.integers(0, 13, (n, 32, 64)).astype(np.uint8)
        seg[:, :2] = 255
        depth = rng.uniform(0.5, 8.0, (n, 32, 64)).astype(np.float32)
        depth[:, :, :3] = 0.0
        np.savez(tmp_path / f"{split}.npz", image=rng.integers(0, 256, (n, 32, 64, 3), dtype=np.uint8),
                 seg=seg, depth=depth)
    cfg = config_lib.load(os.path.join(REPO, "configs/amalgamation/nyuv2.py"),
                          [f"data.data_dir={str(tmp_path)!r}", "data.batch_size=2"])
    assert cfg.algorithm == "branching" and cfg.model.name == "branchy_segnet"
    assert cfg.model.kwargs["width"] == 1.0 and [t["kind"] for t in cfg.teachers] == ["segmentation", "depth"]
    teachers = []
    for spec in cfg.teachers:
        tcfg = run.network_config(spec, cfg)  # the config the teacher is trained from
        assert tcfg.model.name == "segnet" and tcfg.model.kwargs["width"] == 1.0
        assert tcfg.data.data_dir == str(tmp_path)
        tcfg.data.batch_size = 2
        tcfg.model.kwargs = {"width": 0.0625}  # the real width builds too; a narrow one keeps the test fast
        algo = DenseSupervised(tcfg, [])
        assert algo.train_ds.images.shape == (4, 32, 64, 3) and algo.num_seg_classes == 13
        state = algo.init(jax.random.PRNGKey(0), algo.train_batches(0).host_batch(0))
        state, metrics = jax.jit(algo.train_step)(state, [], algo.train_batches(0).host_batch(0))
        assert np.isfinite(float(metrics["loss"]))
        arch, n, variables, meta = algo.export(state)
        teachers.append(Teacher(arch, algo.student, variables, list(range(n)), meta["kwargs"]))
    assert [len(t.classes) for t in teachers] == [13, 1]
    cfg.model.kwargs = {"width": 0.0625}
    student = BranchyDistill(cfg, teachers)
    assert student.student_classes == list(range(14))
    assert student.test_ds.image_shape == (32, 64, 3)
