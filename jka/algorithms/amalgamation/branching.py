"""Task branching, "Student Becoming the Master" (docs/methods.md, "Task branching"; CVPR 2019): one
branchy student from N dense teachers, no labels.

``cfg.teachers[i]`` is the teacher of task i (``task``: its name, default ``task<i>``; ``kind``:
``segmentation`` or ``depth``, default by its number of outputs). The student is ``branchy_segnet``: a
shared SegNet encoder/decoder and, per task, an adaptor at every candidate branch point b ∈ {0..5}
with its own copy of the decoder blocks after b. Each task mimics its teacher (:func:`mimic_loss`).

The job (:func:`run`), three phases of :class:`BranchyDistill`:

1. Search (``WORKDIR/search``, ``branch.search_steps``, default half of ``train.steps``): a random
   branch point per task every step, inside one compiled step (``lax.switch``: only the drawn branch
   runs and updates its statistics).
2. Selection: ``L_t(b)`` over one pass of the training images (``branch.select_batches``); task t
   takes the deepest b within ``(1 + branch.tolerance)`` of its lowest loss (:func:`select_branch_points`;
   tolerance 0 is the paper's rule). Written to ``WORKDIR/branch_points.json``.
3. Student (``WORKDIR`` itself, the remaining steps): the search student continues
   (``train.init_from``) with the points fixed; its checkpoints and ``WORKDIR/model`` are the job's,
   so ``jka eval`` evaluates it.

Eval: per task ``<task>_miou`` / ``_pixel_acc`` or ``_rmse`` / ``_abs_rel`` / ``_delta1..3``, the same
for its teacher (``teacher_<task>_*``), and the ratios ``<task>_miou_ratio`` / ``<task>_rmse_ratio``
(``miou_ratio`` / ``rmse_ratio`` of the first task of each kind).
"""
from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from jka import losses, paths
from jka.algorithms.amalgamation.dense import DenseAlgorithm, dense_metric_sums, task_kind, task_scores, task_sums
from jka.config import derive, section
from jka.data.augment import to_float
from jka.errors import ConfigError, UserError
from jka.losses import dense
from jka.models.segnet import NUM_POINTS
from jka.train.export import load_model
from jka.train.phases import Phase, run_phase
from jka.train.state import TrainState, make_optimizer

POINTS_FILE = "branch_points.json"
_TEACHER_SUMS: dict = {}
# The ``branch`` section (recipes.amalgamation.branch_section): search_steps (default half of
# train.steps), tolerance, select_batches (default all), eval_points (the search phase's eval).
BRANCH_DEFAULTS = dict(search_steps=None, tolerance=0.0, select_batches=None, eval_points=None)


def branch_settings(cfg):
    """``cfg.branch`` with every default filled in."""
    return section(cfg, "branch", BRANCH_DEFAULTS, "task branching")


def mimic_loss(kind: str, student_out, teacher_out):
    """One task's distillation term: per-pixel ``kd(·,·,1)`` (segmentation) or L1 (depth)."""
    if kind == "segmentation":
        return losses.kd(student_out, teacher_out, 1.0)
    return dense.masked_l1(student_out, teacher_out)


def select_branch_points(point_losses, tolerance: float = 0.0) -> list[int]:
    """Per task (row), the deepest branch point whose loss is within ``(1 + tolerance)`` of the row's
    minimum (see the module docstring)."""
    point_losses = np.asarray(point_losses, np.float64)
    if point_losses.ndim != 2 or not np.isfinite(point_losses).all():
        raise UserError(f"branch-point losses must be a finite (tasks, points) table; got {point_losses}")
    if tolerance < 0:
        raise ConfigError(f"branch.tolerance must be ≥ 0; got {tolerance}")
    out = []
    for row in point_losses:
        ok = np.flatnonzero(row <= row.min() * (1.0 + tolerance))
        out.append(int(ok.max()))
    return out


def checked_points(points, n_tasks: int) -> tuple:
    pts = tuple(int(p) for p in points)
    if len(pts) != n_tasks or not all(0 <= p < NUM_POINTS for p in pts):
        raise ConfigError(f"branch points must be one point in 0..{NUM_POINTS - 1} per task ({n_tasks}); "
                          f"got {list(pts)}")
    return pts


def tasks_of(cfg, teachers) -> list[dict]:
    """``[{name, kind, channels}]`` per teacher (see the module docstring)."""
    if not teachers:
        raise ConfigError("task branching needs one teacher per dense task in cfg.teachers")
    tasks = []
    for i, (spec, t) in enumerate(zip(cfg.teachers, teachers)):
        channels = len(t.classes)
        kind = task_kind(spec.get("kind", None) or ("depth" if channels == 1 else "segmentation"))
        if kind == "depth" and channels != 1:
            raise ConfigError(f"teachers[{i}] is a depth task but has {channels} outputs; a depth teacher has 1")
        tasks.append(dict(name=str(spec.get("task", None) or f"task{i}"), kind=kind, channels=channels))
    names = [t["name"] for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"task names {names} repeat; give each teachers[i].task a distinct name")
    return tasks


class BranchyDistill(DenseAlgorithm):
    """The branchy student learning every task from its teacher. ``points=None`` (phase 1, search):
    each step draws a random branch point per task; ``points`` (one per task, phase 3): fixed."""

    uses_labels = False

    def __init__(self, cfg, teachers, points=None):
        if cfg.model.name != "branchy_segnet":
            raise ConfigError(f"task branching trains model.name='branchy_segnet', not {cfg.model.name!r}")
        self.tasks = tasks_of(cfg, teachers)
        self.branch = branch_settings(cfg)
        self.points = None if points is None else checked_points(points, len(self.tasks))
        self.name = "branching_search" if points is None else "branching_student"
        kwargs = dict(cfg.model.get("kwargs", {}))
        kwargs["task_channels"] = [t["channels"] for t in self.tasks]
        kwargs.pop("branch_points", None)
        cfg = derive(cfg, **{"model.kwargs": kwargs})
        super().__init__(cfg, teachers)
        for t in self.tasks:
            if t["kind"] == "segmentation" and t["channels"] != self.num_seg_classes:
                raise ConfigError(f"task {t['name']!r} has {t['channels']} classes but the data has "
                                  f"{self.num_seg_classes}; use a teacher trained on this dataset")
        self._sums_fn = self._student_sums
        self._teacher_scores = None

    def dense_classes(self):
        return list(range(sum(t["channels"] for t in self.tasks)))

    # -- the student and the teachers ---------------------------------------------------------
    def init(self, rng, batch):
        k_init, k_state = jax.random.split(rng)
        x = self.prepare(None, batch["image"][:1])
        variables = self.student.init(k_init, x, train=False, method="init_all")
        params = dict(variables["params"])
        # A depth branch starts at its teacher's mean prediction on the first batch (no labels).
        x_all = self.prepare(None, batch["image"])
        for t, (task, teacher) in enumerate(zip(self.tasks, self.teachers)):
            key = f"task{t}"
            if task["kind"] == "depth" and key in params and "head" in params[key]:
                mean = jnp.mean(teacher(teacher.variables, x_all)[0])
                head = params[key]["head"]
                params[key] = {**params[key], "head": {**head, "bias": jnp.full_like(head["bias"], mean)}}
        tx = make_optimizer(self.cfg.optim, self.total_steps)
        return TrainState.create(params, tx, k_state, variables.get("batch_stats", {}))

    def teacher_outputs(self, teacher_vars, x):
        return [t(v, x)[0] for t, v in zip(self.teachers, teacher_vars)]

    def _run_task(self, t, point, params, batch_stats, maps, indices, train):
        """Task ``t`` branching at ``point`` (a Python int): (output, batch stats)."""
        variables = {"params": params, "batch_stats": batch_stats}
        if not train:
            return self.student.apply(variables, t, point, maps, indices, False, method="task"), batch_stats
        out, upd = self.student.apply(variables, t, point, maps, indices, True, method="task",
                                      mutable=["batch_stats"])
        return out, upd["batch_stats"]

    def _shared(self, params, batch_stats, x, train):
        variables = {"params": params, "batch_stats": batch_stats}
        if not train:
            return self.student.apply(variables, x, False, method="shared"), batch_stats
        out, upd = self.student.apply(variables, x, True, method="shared", mutable=["batch_stats"])
        return out, upd["batch_stats"]

    def forward(self, params, batch_stats, x, points, train: bool):
        """Every task's output with branch points ``points`` (Python ints, or traced ints: then each
        task's branch runs under ``lax.switch``), and the updated batch statistics."""
        (maps, indices), batch_stats = self._shared(params, batch_stats, x, train)
        outs = []
        for t in range(len(self.tasks)):
            if isinstance(points[t], (int, np.integer)):
                out, batch_stats = self._run_task(t, int(points[t]), params, batch_stats, maps, indices, train)
            else:
                branches = [functools.partial(self._run_task, t, p, train=train) for p in range(NUM_POINTS)]
                out, batch_stats = jax.lax.switch(points[t], branches, params, batch_stats, maps, indices)
            outs.append(out)
        return outs, batch_stats

    def train_points(self, rng):
        if self.points is not None:
            return self.points
        pts = jax.random.randint(rng, (len(self.tasks),), 0, NUM_POINTS)
        return [pts[t] for t in range(len(self.tasks))]

    def eval_points(self) -> tuple:
        if self.points is not None:
            return self.points
        pts = self.branch.get("eval_points", None)
        return tuple(int(p) for p in pts) if pts is not None else (0,) * len(self.tasks)

    def loss(self, params, batch_stats, teacher_vars, x, batch, rng):
        t_outs = self.teacher_outputs(teacher_vars, x)
        outs, new_bs = self.forward(params, batch_stats, x, self.train_points(rng), train=True)
        metrics = {}
        total = 0.0
        for task, s, t in zip(self.tasks, outs, t_outs):
            metrics[f"{task['name']}_loss"] = term = mimic_loss(task["kind"], s, t)
            total = total + term
        return total, (new_bs, metrics)

    def predict(self, state, images):
        outs, _ = self.forward(state.params, state.batch_stats, self.prepare(None, images), self.eval_points(),
                               train=False)
        return tuple(outs)

    # -- evaluation ------------------------------------------------------------------------------
    def _student_sums(self, state, batch):
        outs = self.predict(state, batch["image"])
        return [task_sums(t["kind"], o, batch, t["channels"]) for t, o in zip(self.tasks, outs)]

    def _teacher_sums_fn(self):
        """The teachers' metric sums as one function object per (teachers, tasks, normalisation), so
        every phase of a job (and ``jka eval``) reuses one compilation."""
        key = (tuple((t.arch, json.dumps(t.kwargs, sort_keys=True), len(t.classes)) for t in self.teachers),
               tuple((t["kind"], t["channels"]) for t in self.tasks), tuple(self.mean), tuple(self.std),
               jnp.dtype(self.dtype).name)
        if key not in _TEACHER_SUMS:
            teachers, tasks = list(self.teachers), list(self.tasks)
            mean, std, dtype = tuple(self.mean), tuple(self.std), self.dtype

            def sums(teacher_vars, batch):
                x = to_float(batch["image"], mean, std).astype(dtype)
                outs = [t(v, x)[0] for t, v in zip(teachers, teacher_vars)]
                return [task_sums(task["kind"], o, batch, task["channels"]) for task, o in zip(tasks, outs)]

            _TEACHER_SUMS[key] = sums
        return _TEACHER_SUMS[key]

    def teacher_scores(self, mesh) -> list[dict]:
        if self._teacher_scores is None:
            sums = dense_metric_sums(self._teacher_sums_fn(), [t.variables for t in self.teachers], self.test_ds,
                                     int(self.cfg.data.batch_size), mesh)
            self._teacher_scores = [task_scores(t["kind"], s) for t, s in zip(self.tasks, sums)]
        return self._teacher_scores

    def evaluate(self, state, mesh) -> dict:
        sums = dense_metric_sums(self._sums_fn, state, self.test_ds, int(self.cfg.data.batch_size), mesh)
        out = {}
        for task, s, teacher in zip(self.tasks, sums, self.teacher_scores(mesh)):
            name, student = task["name"], task_scores(task["kind"], s)
            out.update({f"{name}_{k}": v for k, v in student.items()})
            out.update({f"teacher_{name}_{k}": v for k, v in teacher.items()})
            key = "miou" if task["kind"] == "segmentation" else "rmse"
            ratio = student[key] / max(teacher[key], 1e-12)
            out[f"{name}_{key}_ratio"] = ratio
            out.setdefault(f"{key}_ratio", ratio)
        return out

    def input_info(self) -> dict:
        return {**super().input_info(), "tasks": [dict(t) for t in self.tasks]}

    def export(self, state):
        arch, n, variables, meta = super().export(state)
        if self.points is not None:
            meta["kwargs"] = {**meta["kwargs"], "branch_points": list(self.points)}
        return arch, n, variables, meta

    def point_losses(self, variables, teacher_vars, images):
        """(tasks, points) mimic losses of one batch, the student in inference mode."""
        x = self.prepare(None, images)
        t_outs = self.teacher_outputs(teacher_vars, x)
        params, bs = variables["params"], variables["batch_stats"]
        (maps, indices), _ = self._shared(params, bs, x, False)
        rows = []
        for t, task in enumerate(self.tasks):
            rows.append(jnp.stack([mimic_loss(task["kind"], self._run_task(t, p, params, bs, maps, indices, False)[0],
                                              t_outs[t]) for p in range(NUM_POINTS)]))
        return jnp.stack(rows)

    def loss_table(self, variables) -> np.ndarray:
        """Phase 2: ``L_t(b)`` averaged over one pass of the training images."""
        batches = self.train_batches(int(self.cfg.get("seed", 0)))
        n = batches.steps_per_epoch
        limit = self.branch.get("select_batches", None)
        n = n if limit is None else max(1, min(n, int(limit)))
        fn = jax.jit(self.point_losses)
        teacher_vars = [t.variables for t in self.teachers]
        total = sum(np.asarray(fn(variables, teacher_vars, batches.ds.images[batches.indices(k)]), np.float64)
                    for k in range(n))
        return total / n


# -- the job -------------------------------------------------------------------------------------------
def _search_steps(cfg) -> tuple[int, int]:
    steps = int(cfg.train.steps)
    search = int(branch_settings(cfg)["search_steps"] or steps // 2)
    if not 0 < search < steps:
        raise ConfigError(f"branch.search_steps must be in 1..train.steps−1 ({steps - 1}); got {search}")
    return search, steps


def _student_phase(cfg, workdir, teachers, points) -> Phase:
    search, steps = _search_steps(cfg)
    sub = derive(cfg, **{"train.steps": steps - search, "train.init_from": os.path.join(workdir, "search")})
    return Phase(BranchyDistill, sub, workdir, teachers, dict(points=points))


def run(cfg, workdir: str, teachers) -> dict:
    """Search (phase 1), select (phase 2), train with the selected points (phase 3)."""
    tasks = tasks_of(cfg, teachers)
    search_steps, _ = _search_steps(cfg)
    search_dir = os.path.join(workdir, "search")
    sub = derive(cfg, **{"train.steps": search_steps})
    search = run_phase(Phase(BranchyDistill, sub, search_dir, teachers))

    # Phase 2: the loss of every task at every branch point, and the selection.
    variables, _ = load_model(search_dir)
    table = BranchyDistill(sub, teachers).loss_table(jax.tree.map(jnp.asarray, variables))
    tol = float(branch_settings(cfg)["tolerance"])
    points = select_branch_points(table, tol)
    record = {"points": points, "tolerance": tol, "tasks": [t["name"] for t in tasks],
              "losses": {t["name"]: [float(v) for v in row] for t, row in zip(tasks, table)}}
    paths.write_json(os.path.join(workdir, POINTS_FILE), record)

    student = run_phase(_student_phase(cfg, workdir, teachers, points))
    return {**student, "algorithm": "branching", "labels_used": False,
            "branch_points": {t["name"]: p for t, p in zip(tasks, points)},
            "branch_point_losses": record["losses"], "branch_tolerance": tol,
            "tasks": tasks, "phases": {"search": {"step": search["step"], "eval": search["eval"]},
                                       "student": {"step": student["step"]}},
            "teachers": [{"arch": t.arch, "task": task["name"], "kind": task["kind"]}
                         for t, task in zip(teachers, tasks)]}


def final_phase(cfg, workdir: str, teachers) -> Phase:
    """The phase ``jka eval`` evaluates: the student with the branch points the job selected."""
    path = os.path.join(workdir, POINTS_FILE)
    if not paths.isfile(path):
        raise UserError(f"no branch points: {path} is missing; run the whole job first "
                        f"(`jka train CONFIG --workdir {workdir}`)")
    return _student_phase(cfg, workdir, teachers, paths.read_json(path)["points"])
