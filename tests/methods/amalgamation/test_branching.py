"""Task branching end to end on tiny scenes, the in-step branch draw, and the NYUv2 config."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import run
from jka.methods.amalgamation import branching, dense_supervised
from jka.methods.amalgamation.branching import POINTS_FILE
from jka.models import create
from jka.models.segnet import NUM_POINTS
from jka.train.export import export_model
from jka.train.teachers import Teacher
from jka.run import evaluate, train

TINY = ["data.train_size=48", "data.test_size=24", "data.batch_size=8"]


def tiny_job(workdir, steps=6):
    """The shipped config, shrunk; its teachers are exported untrained (from init) into the job's
    workdir so the test spends its time on the three phases (teachers from their configs are
    jka.train.teachers' shared path)."""
    cfg = run.load("amalgamation/scenes", [f"train.steps={steps}", "model.kwargs.width=0.0625", *TINY,
                                           "train.progress=False", "train.log_every=3"])
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
    def forward(points):
        return branching.forward(student, 2, v["params"], v["batch_stats"], x, points, train=False)

    traced = jax.jit(lambda p, q: forward([p, q])[0])
    for p, q in [(0, 5), (3, 1), (5, 0)]:
        static, _ = forward([p, q])
        got = traced(jnp.int32(p), jnp.int32(q))
        for a, b in zip(got, static):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # Different points are different networks.
    a = forward([0, 0])[0][0]
    b = forward([5, 0])[0][0]
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
    cfg = run.load("amalgamation/nyuv2", [f"data.data_dir={str(tmp_path)!r}", "data.batch_size=2"])
    assert cfg.algorithm == "branching" and cfg.model.name == "branchy_segnet"
    assert cfg.model.kwargs["width"] == 1.0 and [t["kind"] for t in cfg.teachers] == ["segmentation", "depth"]
    teachers = []
    for spec in cfg.teachers:
        tcfg = run.network_config(spec, cfg)  # the config the teacher is trained from
        assert tcfg.model.name == "segnet" and tcfg.model.kwargs["width"] == 1.0
        assert tcfg.data.data_dir == str(tmp_path)
        tcfg.data.batch_size = 2
        tcfg.model.kwargs = {"width": 0.0625}  # the real width builds too; a narrow one keeps the test fast
        program = dense_supervised.METHOD.program(tcfg, [], None)
        assert program.data.train.images.shape == (4, 32, 64, 3) and program.data.train.num_classes == 13
        state = program.init(jax.random.PRNGKey(0), program.batches.host_batch(0))
        state, metrics = jax.jit(program.step)(state, [], program.batches.host_batch(0))
        assert np.isfinite(float(metrics["loss"]))
        out = program.export(state)
        module = create(out.arch, out.num_classes, **out.info["kwargs"])
        teachers.append(Teacher(out.arch, module, out.variables, list(range(out.num_classes)), out.info["kwargs"]))
    assert [len(t.classes) for t in teachers] == [13, 1]
    cfg.model.kwargs = {"width": 0.0625}
    student = branching.BRANCHY.program(cfg, teachers, None)
    assert student.data.classes == list(range(14))
    assert student.data.test.image_shape == (32, 64, 3)
