"""Task branching, "Student Becoming the Master" (docs/methods.md, "Task branching"; CVPR 2019): one
branchy student from N dense teachers, no labels.

``cfg.teachers[i]`` teaches task i (``task``: its name, default ``task<i>``; ``kind``: ``segmentation``
or ``depth``, default by its number of outputs). The student, ``branchy_segnet``, is a shared SegNet
encoder/decoder with, per task, an adaptor at every branch point b ∈ {0..5} and its own copy of the
decoder blocks after b. The loss sums each task's :func:`mimic_loss` to its teacher.

The job (:func:`plan`), three phases of :data:`BRANCHY`:

1. Search (``WORKDIR/search``, ``branching.search_steps``, default half of ``train.steps``): a random
   branch point per task every step, inside one compiled step (``lax.switch``: only the drawn branch
   runs and updates its statistics).
2. Selection: task t takes the deepest b whose ``L_t(b)`` over one pass of the training images
   (``branching.select_batches``) is within ``(1 + branching.tolerance)`` of its lowest (tolerance 0:
   the paper's rule), written once to ``WORKDIR/branch_points.json``.
3. Student (``WORKDIR`` itself, the remaining steps, final): the search student continues
   (``train.init_from``) with the points fixed, so ``jka eval`` evaluates it.

Eval: per task ``<task>_miou`` / ``_pixel_acc`` or ``_rmse`` / ``_abs_rel`` / ``_delta1..3``, the same
for its teacher (``teacher_<task>_*``), and ``<task>_miou_ratio`` / ``<task>_rmse_ratio`` (``miou_ratio``
/ ``rmse_ratio``: the first task of each kind's).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jka import losses, paths
from jka.config import derive
from jka.errors import ConfigError, UserError
from jka.losses import dense as dense_losses
from jka.methods import common
from jka.methods.amalgamation import dense
from jka.methods.api import Method
from jka.models.segnet import NUM_POINTS
from jka.settings import integer, number, optional, sequence, setting
from jka.train.export import load_model
from jka.train.phases import Phase
from jka.train.teachers import compute_dtype

POINTS_FILE = "branch_points.json"
_TEACHER_SUMS: dict = {}


@dataclasses.dataclass(frozen=True)
class Settings:
    search_steps: Optional[int] = setting(None, optional(integer(1), "None (half of train.steps)"),
                                          "steps of the search phase (phase 1)")
    tolerance: float = setting(0.0, number(0), "the deepest point within (1 + tolerance) of the lowest loss")
    select_batches: Optional[int] = setting(None, optional(integer(1), "None (one pass)"),
                                            "training batches the selection averages over")
    eval_points: Optional[list] = setting(None, optional(sequence(integer(0, high=NUM_POINTS - 1)), "None (0 each)"),
                                          "branch points (one per task) of the search phase's eval")


def mimic_loss(kind: str, student_out, teacher_out):
    """One task's distillation term: per-pixel ``kd(·,·,1)`` (segmentation) or L1 (depth)."""
    if kind == "segmentation":
        return losses.kd(student_out, teacher_out, 1.0)
    return dense_losses.masked_l1(student_out, teacher_out)


def select_branch_points(point_losses, tolerance: float = 0.0) -> list[int]:
    """Per task (row), the deepest point within ``(1 + tolerance)`` of the row's minimum."""
    point_losses = np.asarray(point_losses, np.float64)
    if point_losses.ndim != 2 or not np.isfinite(point_losses).all():
        raise UserError(f"branch-point losses must be a finite (tasks, points) table; got {point_losses}")
    if tolerance < 0:
        raise ConfigError(f"branching.tolerance must be ≥ 0; got {tolerance}")
    return [int(np.flatnonzero(row <= row.min() * (1.0 + tolerance)).max()) for row in point_losses]


def checked_points(points, n_tasks: int) -> tuple:
    pts = tuple(int(p) for p in points)
    if len(pts) != n_tasks or not all(0 <= p < NUM_POINTS for p in pts):
        raise ConfigError(f"branch points must be one point in 0..{NUM_POINTS - 1} per task ({n_tasks}); "
                          f"got {list(pts)}")
    return pts


def task_specs(cfg) -> list[tuple]:
    """``[(name, kind or None)]`` of the teachers' entries (names distinct, kinds known)."""
    specs = list(cfg.get("teachers", None) or ())
    if not specs:
        raise ConfigError("task branching needs one teacher per dense task in cfg.teachers")
    out = [(str(spec.get("task", None) or f"task{i}"), spec.get("kind", None) and dense.task_kind(spec["kind"]))
           for i, spec in enumerate(specs)]
    names = [name for name, _ in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"task names {names} repeat; give each teachers[i].task a distinct name")
    return out


def tasks_of(cfg, teachers) -> list[dict]:
    """``[{name, kind, channels}]`` per teacher (see the module docstring)."""
    tasks = []
    for i, ((name, kind), t) in enumerate(zip(task_specs(cfg), teachers)):
        channels = len(t.classes)
        kind = kind or ("depth" if channels == 1 else "segmentation")
        if kind == "depth" and channels != 1:
            raise ConfigError(f"teachers[{i}] is a depth task but has {channels} outputs; a depth teacher has 1")
        tasks.append(dict(name=name, kind=kind, channels=channels))
    return tasks


def search_steps_of(cfg, s: Settings) -> tuple[int, int]:
    steps = int(cfg.train.steps)
    search = int(s.search_steps or steps // 2)
    if not 0 < search < steps:
        raise ConfigError(f"branching.search_steps must be in 1..train.steps−1 ({steps - 1}); got {search}")
    return search, steps


def check(cfg, s: Settings):
    if cfg.model.name != "branchy_segnet":
        raise ConfigError(f"task branching trains model.name='branchy_segnet', not {cfg.model.name!r}")
    n = len(task_specs(cfg))
    search_steps_of(cfg, s)
    if s.eval_points is not None and len(s.eval_points) != n:
        raise ConfigError(f"branching.eval_points needs one point per task ({n}); got {list(s.eval_points)}")


# -- the branchy student ---------------------------------------------------------------------------------
def student_of(cfg, teachers, dtype):
    """(tasks, the dense data, the branchy student: one output width per task)."""
    tasks = tasks_of(cfg, teachers)
    data = dense.split(cfg, lambda n_seg: range(sum(t["channels"] for t in tasks)))
    for t in tasks:
        if t["kind"] == "segmentation" and t["channels"] != data.train.num_classes:
            raise ConfigError(f"task {t['name']!r} has {t['channels']} classes but the data has "
                              f"{data.train.num_classes}; use a teacher trained on this dataset")
    kwargs = {**cfg.model.get("kwargs", {}), "task_channels": [t["channels"] for t in tasks]}
    kwargs.pop("branch_points", None)
    kwargs = dict(sorted(kwargs.items()))  # in the order a config section lists them (model.json)
    return tasks, data, common.Net.create(cfg.model.name, len(data.classes), dtype, **kwargs)


def _with_stats(module, method: str, params, batch_stats, *args, train: bool):
    """``module.<method>(*args, train)`` and the batch statistics it leaves."""
    variables = {"params": params, "batch_stats": batch_stats}
    if not train:
        return module.apply(variables, *args, False, method=method), batch_stats
    out, upd = module.apply(variables, *args, True, method=method, mutable=["batch_stats"])
    return out, upd["batch_stats"]


def run_task(module, t, point, params, batch_stats, maps, indices, train):
    """Task ``t`` branching at ``point`` (a Python int): (output, batch stats)."""
    return _with_stats(module, "task", params, batch_stats, t, point, maps, indices, train=train)


def forward(module, n_tasks: int, params, batch_stats, x, points, train: bool):
    """(every task's output at ``points``, the batch statistics); a traced point runs under ``lax.switch``."""
    (maps, indices), batch_stats = _with_stats(module, "shared", params, batch_stats, x, train=train)
    outs = []
    for t in range(n_tasks):
        if isinstance(points[t], (int, np.integer)):
            out, batch_stats = run_task(module, t, int(points[t]), params, batch_stats, maps, indices, train)
        else:
            branches = [functools.partial(run_task, module, t, p, train=train) for p in range(NUM_POINTS)]
            out, batch_stats = jax.lax.switch(points[t], branches, params, batch_stats, maps, indices)
        outs.append(out)
    return outs, batch_stats


def point_losses(module, tasks, teachers, x, variables, teacher_vars):
    """(tasks, points) mimic losses of one batch of inputs ``x``, the student in inference mode."""
    t_outs = [t(v, x)[0] for t, v in zip(teachers, teacher_vars)]
    params, bs = variables["params"], variables["batch_stats"]
    (maps, indices), _ = _with_stats(module, "shared", params, bs, x, train=False)
    return jnp.stack([jnp.stack([mimic_loss(task["kind"], run_task(module, t, p, params, bs, maps, indices, False)[0],
                                            t_outs[t]) for p in range(NUM_POINTS)]) for t, task in enumerate(tasks)])


def loss_table(cfg, s: Settings, teachers, variables) -> np.ndarray:
    """Phase 2: ``L_t(b)`` averaged over one pass of the training images (``select_batches`` of them)."""
    dtype = compute_dtype(cfg)
    tasks, data, net = student_of(cfg, teachers, dtype)
    prepare = dense.preparer(data, dtype)
    batches = dense.ImageBatches(data.train, int(cfg.data.batch_size), int(cfg.seed))
    n = batches.steps_per_epoch
    n = n if s.select_batches is None else max(1, min(n, int(s.select_batches)))
    fn = jax.jit(lambda v, tv, images: point_losses(net.module, tasks, teachers, prepare(images), v, tv))
    teacher_vars = [t.variables for t in teachers]
    total = sum(np.asarray(fn(variables, teacher_vars, batches.ds.images[batches.indices(k)]), np.float64)
                for k in range(n))
    return total / n


def teacher_sums(teachers, tasks, data, dtype):
    """The teachers' metric sums, one function object per key: every phase and ``jka eval`` compile it once."""
    key = (tuple((t.arch, json.dumps(t.kwargs, sort_keys=True), len(t.classes)) for t in teachers),
           tuple((t["kind"], t["channels"]) for t in tasks), tuple(data.mean), tuple(data.std), jnp.dtype(dtype).name)
    if key not in _TEACHER_SUMS:
        teachers, tasks, prepare = list(teachers), list(tasks), dense.preparer(data, dtype)

        def sums(teacher_vars, batch):
            x = prepare(batch["image"])
            outs = [t(v, x)[0] for t, v in zip(teachers, teacher_vars)]
            return [dense.task_sums(task["kind"], o, batch, task["channels"]) for task, o in zip(tasks, outs)]

        _TEACHER_SUMS[key] = sums
    return _TEACHER_SUMS[key]


def build(ctx):
    """The branchy student; without the ``points`` option (search) each step draws a point per task."""
    s, cfg, teachers = ctx.settings, ctx.cfg, ctx.teachers
    tasks, data, net = student_of(cfg, teachers, ctx.dtype)
    points = ctx.options.get("points", None)
    points = None if points is None else checked_points(points, len(tasks))
    name = "branching_search" if points is None else "branching_student"
    eval_points = points or (tuple(int(p) for p in s.eval_points) if s.eval_points is not None else (0,) * len(tasks))
    prepare, n, batch_size = dense.preparer(data, ctx.dtype), len(tasks), int(cfg.data.batch_size)

    def init(rng, batch):
        variables = net.module.init(rng, prepare(batch["image"][:1]), train=False, method="init_all")
        params = dict(variables["params"])
        # A depth branch starts at its teacher's mean prediction on the first batch (no labels).
        x_all = prepare(batch["image"])
        for t, (task, teacher) in enumerate(zip(tasks, teachers)):
            key = f"task{t}"
            if task["kind"] == "depth" and key in params and "head" in params[key]:
                params = dense.with_bias(params, (key, "head"), jnp.mean(teacher(teacher.variables, x_all)[0]))
        return {"params": params, "batch_stats": variables.get("batch_stats", {})}

    def train_points(rng):
        return points if points is not None else list(jax.random.randint(rng, (n,), 0, NUM_POINTS))

    def loss(params, batch_stats, teacher_vars, x, maps, rng):
        t_outs = [t(v, x)[0] for t, v in zip(teachers, teacher_vars)]
        outs, new_bs = forward(net.module, n, params["student"], batch_stats["student"], x, train_points(rng), True)
        metrics = {f"{task['name']}_loss": mimic_loss(task["kind"], out, t)
                   for task, out, t in zip(tasks, outs, t_outs)}
        return sum(metrics.values()), ({"student": new_bs}, metrics)

    def student_sums(state, batch):
        outs, _ = forward(net.module, n, state.params["student"], state.batch_stats["student"],
                          prepare(batch["image"]), eval_points, train=False)
        return [dense.task_sums(t["kind"], o, batch, t["channels"]) for t, o in zip(tasks, outs)]

    teacher_scores = []  # computed at the first evaluation

    def evaluate(state, ectx):
        sums = dense.metric_sums(student_sums, state, data.test, batch_size, ectx.mesh)
        if not teacher_scores:
            t_sums = dense.metric_sums(teacher_sums(teachers, tasks, data, ctx.dtype), [t.variables for t in teachers],
                                       data.test, batch_size, ectx.mesh)
            teacher_scores.extend(dense.task_scores(t["kind"], ts) for t, ts in zip(tasks, t_sums))
        out = {}
        for task, task_sums, teacher in zip(tasks, sums, teacher_scores):
            name, student = task["name"], dense.task_scores(task["kind"], task_sums)
            out.update({f"{name}_{k}": v for k, v in student.items()})
            out.update({f"teacher_{name}_{k}": v for k, v in teacher.items()})
            key = "miou" if task["kind"] == "segmentation" else "rmse"
            out[f"{name}_{key}_ratio"] = ratio = student[key] / max(teacher[key], 1e-12)
            out.setdefault(f"{key}_ratio", ratio)
        return out

    def export(state):
        out = common.exported(net, state.variables("student"), data, tasks=[dict(t) for t in tasks])
        if points is None:
            return out
        kwargs = {**out.info["kwargs"], "branch_points": list(points)}
        return dataclasses.replace(out, info={**out.info, "kwargs": kwargs})

    return dense.program(ctx, name, data, net, init, loss, evaluate, export, uses_labels=False)


BRANCHY = Method("branching_phase", build=build, settings=Settings, section="branching")


# -- the job -------------------------------------------------------------------------------------------
def selection(job, cfg, tasks, search_dir: str) -> dict:
    """Phase 2's record, kept in ``branch_points.json``; a rehearsal stands in point 0 (the most work)."""
    path, tol = os.path.join(job.workdir, POINTS_FILE), float(job.settings.tolerance)
    if job.rehearsal:
        return {"points": [0] * len(tasks), "losses": {}}
    if not paths.isfile(path):
        variables, _ = load_model(search_dir)
        table = loss_table(cfg, job.settings, job.teachers, jax.tree.map(jnp.asarray, variables))
        paths.write_json(path, {"points": select_branch_points(table, tol), "tolerance": tol,
                                "tasks": [t["name"] for t in tasks],
                                "losses": {t["name"]: [float(v) for v in row] for t, row in zip(tasks, table)}})
    return paths.read_json(path)


def plan(job):
    """Search (phase 1), select (phase 2), train with the selected points (phase 3)."""
    cfg, teachers = job.cfg, job.teachers
    tasks = tasks_of(cfg, teachers)
    search_steps, steps = search_steps_of(cfg, job.settings)
    search_dir = os.path.join(job.workdir, "search")
    sub = derive(cfg, **{"train.steps": search_steps})
    search = yield Phase(BRANCHY, sub, search_dir, teachers, name="search")
    record = selection(job, sub, tasks, search_dir)
    points = record["points"]
    student_cfg = derive(cfg, **{"train.steps": steps - search_steps, "train.init_from": search_dir})
    student = yield Phase(BRANCHY, student_cfg, job.workdir, teachers, dict(points=points), name="student", final=True)
    return {**student, "algorithm": "branching", "labels_used": False,
            "branch_points": {t["name"]: p for t, p in zip(tasks, points)},
            "branch_point_losses": record["losses"], "branch_tolerance": float(job.settings.tolerance),
            "tasks": tasks, "phases": {"search": {"step": search["step"], "eval": search["eval"]},
                                       "student": {"step": student["step"]}},
            "teachers": [{"arch": t.arch, "task": task["name"], "kind": task["kind"]}
                         for t, task in zip(teachers, tasks)]}


METHOD = Method("branching", plan=plan, settings=Settings, check=check,
                summary="task branching: one branchy student from dense teachers (search, select, train)")
