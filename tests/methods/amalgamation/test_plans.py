"""The two jobs' plans, walked as ``jka check`` rehearses them: each phase is built and exports a
model of its real shapes (untrained) for the phases after it, and what a job computes between phases
from trained networks is stood in for (identity calibration, branch point 0 for every task)."""
import os

import jax
import jax.numpy as jnp

from jka import run
from jka.models import create
from jka.train.export import export_model, to_host


def rehearse(cfg, workdir):
    """(the phases the plan yields: name, final, workdir, options, steps, init_from), its summary."""
    seen = []

    def visit(phase):
        seen.append((phase.name, phase.final, phase.workdir, dict(phase.options), int(phase.cfg.train.steps),
                     phase.cfg.train.init_from))
        program, _ = phase.build()
        out = program.export(program.init(jax.random.PRNGKey(0), program.batches.host_batch(0)))
        export_model(os.path.join(phase.workdir, "model"), out.arch, out.num_classes, to_host(out.variables), **out.info)
        return {"step": int(phase.cfg.train.steps), "eval": {}}

    method = run.check(cfg, workdir)
    return seen, run.drive(method, cfg, workdir, run.resolve_teachers(cfg, workdir), visit, rehearsal=True)


def test_adaptive_plans_a_component_per_subtask_then_the_final_student(teacher_factory, tmp_path):
    dirs = [teacher_factory("a", "small_cnn", 7, width=0.25), teacher_factory("b", "small_cnn", 7, seed=1, width=0.25)]
    cfg = run.load("amalgamation/digits:method=adaptive", [
        f"teachers.0.workdir={dirs[0]!r}", f"teachers.1.workdir={dirs[1]!r}", "train.steps=6",
        "adaptive.component_steps=4", "adaptive.calibrate=True", "model.kwargs={'width': 0.25}"])
    work = str(tmp_path / "job")
    seen, summary = rehearse(cfg, work)
    assert [(name, final) for name, final, *_ in seen] == [("component_0", False), ("component_1", False),
                                                           ("component_2", False), ("student", True)]
    assert [opts["subtask"] for _, _, _, opts, _, _ in seen[:3]] == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    assert all(opts["calibration"] == [(1.0, 0.0)] * 2 for _, _, _, opts, _, _ in seen[:3])  # stood in
    assert [steps for *_, steps, _ in seen] == [4, 4, 4, 6]
    assert seen[3][2] == os.path.join(work, "student") and seen[3][3] == {"overlap": [3, 4, 5, 6]}
    assert not os.path.exists(os.path.join(work, "calibration.json"))
    assert summary["subtasks"] == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]] and summary["labels_used"] is False
    assert summary["eval"]["calibration_teacher1_scale"] == 1.0


def test_branching_plans_the_search_then_the_final_student_in_the_jobs_workdir(tmp_path):
    work = str(tmp_path / "job")
    cfg = run.load("amalgamation/scenes", ["train.steps=6", "model.kwargs.width=0.0625", "data.train_size=16",
                                           "data.test_size=8", "data.batch_size=8"])
    for k, (spec, n) in enumerate(zip(cfg.teachers, (5, 1))):
        variables = create("segnet", n, width=0.0625).init(jax.random.PRNGKey(k), jnp.zeros((1, 32, 32, 3)))
        export_model(os.path.join(work, spec["workdir"], "model"), "segnet", n, dict(variables),
                     classes=list(range(n)), kwargs={"width": 0.0625})
    seen, summary = rehearse(cfg, work)
    search_dir = os.path.join(work, "search")
    assert seen == [("search", False, search_dir, {}, 3, ""),
                    ("student", True, work, {"points": [0, 0]}, 3, search_dir)]
    assert summary["branch_points"] == {"seg": 0, "depth": 0} and summary["tasks"][1]["kind"] == "depth"
    assert not os.path.exists(os.path.join(work, "branch_points.json"))
