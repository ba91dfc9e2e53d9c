"""Task branching, "Student Becoming the Master" (SPEC §3.4): one branchy student from N dense
teachers, no labels.

**Tasks.** ``cfg.teachers[i]`` is the teacher of task i; besides ``workdir`` (and ``config`` to
train it first) it names the task (``task``, default ``task<i>``) and its kind (``kind``:
``segmentation``/``seg`` or ``depth``; default: ``depth`` for a one-output teacher, else
``segmentation``). Any number of tasks, of either kind, is allowed. The student is ``branchy_segnet``
(``jka.models.segnet.BranchySegNet``): a shared SegNet encoder and decoder, and per task an
adaptor at every candidate branch point b ∈ {0 (after the encoder), 1..5 (after shared decoder
block b)} and its own copy of decoder blocks b+1..5 and head.

**Mimicking a teacher** (per task, the student's output ``s`` against the teacher's ``t`` on the same
image, both never seeing a label): segmentation ``kd(s, t, 1)`` per pixel (mean over pixels),
depth ``mean |s − t|`` (L1 over all pixels: the teacher predicts every pixel). The task losses are
summed.

The job ``branching`` runs three phases (``WORKDIR`` = the job's workdir):

1. ``branching_search`` (``WORKDIR/search``, ``branch.search_steps`` steps, default half of
   ``train.steps``): every step draws one branch point per task uniformly from the 6 candidates;
   the step is still one compiled function: the shared maps at all candidates are computed once
   and each task's branch runs under ``lax.switch`` on its drawn point (only the drawn branch
   executes; its batch-norm statistics alone are updated).
2. Selection (no training): with the phase-1 student in inference mode, ``L_t(b)`` = the mean over
   one pass of the training images (``branch.select_batches`` batches, default all) of task t's
   loss when t branches at b, for every t and b. Rule (``select_branch_points``): task t takes the
   **deepest** (largest, i.e. most shared) b with ``L_t(b) ≤ (1 + branch.tolerance) · min_b L_t(b)``.
   ``tolerance = 0`` is SPEC §3.4's "lowest accumulated loss" exactly (ties → deepest); the
   default 0.02 trades up to 2% of the mimic loss for a more shared network. All ``L_t(b)`` are
   written to ``WORKDIR/branch_points.json`` and the summary.
3. ``branching_student`` (in ``WORKDIR`` itself, the remaining steps): the phase-1 student
   continues with every task's branch point fixed to its selection (fresh optimizer). Its
   checkpoints and ``WORKDIR/model`` (``branchy_segnet`` with ``branch_points`` in its kwargs) are
   the job's, so ``jka eval CONFIG --workdir WORKDIR`` evaluates the final student.

Eval (every phase): per task ``<task>_miou``, ``<task>_pixel_acc`` or ``<task>_rmse``,
``<task>_abs_rel``, ``<task>_delta1..3`` for the student and ``teacher_<task>_*`` for its teacher
on the test split, the ratios ``<task>_miou_ratio`` (student / teacher) and ``<task>_rmse_ratio``,
and ``miou_ratio``/``rmse_ratio`` of the first segmentation / depth task.
"""
from __future__ import annotations

import copy
import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jka.algorithms.dense_supervised import (DenseAlgorithm, dense_metric_sums, flip_rows, task_kind, task_scores,
                                             task_sums)
from jka.data.augment import to_float
from jka.errors import ConfigError, UserError
from jka.losses import dense
from jka.models.segnet import NUM_POINTS
from jka.train.checkpoint import load_model
from jka.train.state import TrainState, make_optimizer

POINTS_FILE = "branch_points.json"
_TEACHER_SUMS: dict = {}


def mimic_loss(kind: str, student_out, teacher_out):
    """One task's distillation term: per-pixel ``kd(·,·,1)`` (segmentation) or L1 (depth)."""
    if kind == "segmentation":
        return dense.pixel_kd(student_out, teacher_out, 1.0)
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


def branch_section(**kw) -> ml_collections.ConfigDict:
    """The ``branch`` section with every key task branching reads (defaults)."""
    section = dict(search_steps=None, tolerance=0.02, select_batches=None, points=None, init_from=None,
                   eval_points=None)
    section.update(kw)
    return ml_collections.ConfigDict(section, type_safe=False)


def share_data_dir(cfg):
    """A copy of ``cfg`` whose teachers' configs (ConfigDicts of the same ``data.name``) read the
    job's ``data.data_dir``: teachers and student must see one dataset, and one override
    (``data.data_dir=...``) then moves them all."""
    cfg = ml_collections.ConfigDict(cfg.to_dict())
    for spec in cfg.teachers:
        tcfg = spec.get("config", None)
        if isinstance(tcfg, ml_collections.ConfigDict) and tcfg.data.get("name") == cfg.data.get("name"):
            tcfg.data.data_dir = cfg.data.get("data_dir", None)
    return cfg


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


class _BranchyDistill(DenseAlgorithm):
    """What phases 1 and 3 share: tasks, the branchy student, teacher outputs, dense evaluation."""

    uses_labels = False

    def __init__(self, cfg, teachers):
        if cfg.model.name != "branchy_segnet":
            raise ConfigError(f"task branching trains model.name='branchy_segnet', not {cfg.model.name!r}")
        self.tasks = tasks_of(cfg, teachers)
        self.branch = cfg.get("branch", None) or branch_section()
        cfg = ml_collections.ConfigDict(cfg.to_dict())
        kwargs = dict(cfg.model.get("kwargs", {}))
        kwargs["task_channels"] = [t["channels"] for t in self.tasks]
        kwargs.pop("branch_points", None)
        cfg.model.kwargs = kwargs
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
        raise NotImplementedError

    def eval_points(self) -> tuple:
        raise NotImplementedError

    def loss(self, params, batch_stats, teacher_vars, x, batch, rng):
        t_outs = self.teacher_outputs(teacher_vars, x)
        outs, new_bs = self.forward(params, batch_stats, x, self.train_points(rng), train=True)
        metrics = {}
        total = 0.0
        for task, s, t in zip(self.tasks, outs, t_outs):
            metrics[f"{task['name']}_loss"] = term = mimic_loss(task["kind"], s, t)
            total = total + term
        return total, (new_bs, metrics)

    def train_step(self, state, teacher_vars, batch):
        state, rng = state.next_rng()
        k_flip, k_loss = jax.random.split(rng)
        x = self.prepare(None, batch["image"])
        if self.flips():
            (x,) = flip_rows(k_flip, x)
        grad_fn = jax.value_and_grad(self.loss, has_aux=True)
        (loss, (new_bs, metrics)), grads = grad_fn(state.params, state.batch_stats, teacher_vars, x, batch, k_loss)
        state = state.apply_gradients(grads, batch_stats=new_bs)
        return state, {"loss": loss, **metrics}

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

    def export_info(self) -> dict:
        return {**super().export_info(), "tasks": [dict(t) for t in self.tasks]}


class BranchingSearch(_BranchyDistill):
    """Phase 1: a random branch point per task at every step, inside one compiled step."""

    name = "branching_search"

    def train_points(self, rng):
        pts = jax.random.randint(rng, (len(self.tasks),), 0, NUM_POINTS)
        return [pts[t] for t in range(len(self.tasks))]

    def eval_points(self):
        pts = self.branch.get("eval_points", None)
        return tuple(int(p) for p in pts) if pts is not None else (0,) * len(self.tasks)

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


class BranchingStudent(_BranchyDistill):
    """Phase 3: the branch points fixed (``branch.points``), from the phase-1 student
    (``branch.init_from``)."""

    name = "branching_student"

    def points(self) -> tuple:
        pts = self.branch.get("points", None)
        if pts is None:
            path = os.path.join(getattr(self, "workdir", ""), POINTS_FILE)
            if not os.path.isfile(path):
                raise UserError(f"no branch points: {path} is missing; run the whole job "
                                "(algorithm='branching') or set branch.points")
            with open(path) as f:
                pts = json.load(f)["points"]
        pts = tuple(int(p) for p in pts)
        if len(pts) != len(self.tasks) or not all(0 <= p < NUM_POINTS for p in pts):
            raise ConfigError(f"branch.points must be one point in 0..{NUM_POINTS - 1} per task "
                              f"({len(self.tasks)}); got {list(pts)}")
        return pts

    def train_points(self, rng):
        return self.points()

    def eval_points(self):
        return self.points()

    def init(self, rng, batch):
        state = super().init(rng, batch)
        path = self.branch.get("init_from", None)
        if path:
            variables, _ = load_model(path)
            loaded = jax.tree.map(jnp.asarray, variables)
            if jax.tree.structure(loaded["params"]) != jax.tree.structure(state.params):
                raise ConfigError(f"branch.init_from {path!r} is not a branchy student of the same tasks and width")
            state = TrainState.create(loaded["params"], make_optimizer(self.cfg.optim, self.total_steps), state.rng,
                                      loaded.get("batch_stats", {}))
        return state

    def export(self, state):
        arch, n, variables, meta = super().export(state)
        meta["kwargs"] = {**meta["kwargs"], "branch_points": list(self.points())}
        return arch, n, variables, meta


class Branching(BranchingStudent):
    """The job: search (phase 1), select (phase 2), train with the selected points (phase 3).
    As an algorithm (``jka eval``) it is the phase-3 student read back from the job's workdir."""

    name = "branching"
    is_job = True

    @classmethod
    def run_job(cls, cfg, workdir):
        from jka.train.loop import train
        from jka.train.teachers import ensure_trained, load_teachers

        cfg = share_data_dir(cfg)
        if "branch" not in cfg:
            cfg.branch = branch_section()
        for spec in cfg.teachers:  # resolve against the job's workdir; train missing teachers once
            spec["workdir"] = ensure_trained(spec, workdir, cfg.train.get("progress", True))
        teachers = load_teachers(cfg, workdir)
        tasks = tasks_of(cfg, teachers)
        steps = int(cfg.train.steps)
        search_steps = int(cfg.branch.get("search_steps", None) or steps // 2)
        if not 0 < search_steps < steps:
            raise ConfigError(f"branch.search_steps must be in 1..train.steps−1 ({steps - 1}); got {search_steps}")

        # Phase 1: random branch points.
        sub = copy.deepcopy(cfg)
        sub.algorithm = "branching_search"
        sub.train.steps = search_steps
        search_dir = os.path.join(workdir, "search")
        search = train(sub, search_dir)

        # Phase 2: the loss of every task at every branch point, and the selection.
        algo = BranchingSearch(sub, teachers)
        variables, _ = load_model(search_dir)
        table = algo.loss_table(jax.tree.map(jnp.asarray, variables))
        tol = float(cfg.branch.get("tolerance", 0.0))
        points = select_branch_points(table, tol)
        record = {"points": points, "tolerance": tol, "tasks": [t["name"] for t in tasks],
                  "losses": {t["name"]: [float(v) for v in row] for t, row in zip(tasks, table)}}
        with open(os.path.join(workdir, POINTS_FILE), "w") as f:
            json.dump(record, f, indent=2)

        # Phase 3: the branch points fixed, continuing from the phase-1 student.
        sub = copy.deepcopy(cfg)
        sub.algorithm = "branching_student"
        sub.train.steps = steps - search_steps
        sub.branch.points = points
        sub.branch.init_from = search_dir
        student = train(sub, workdir)
        return {**student, "algorithm": cls.name, "labels_used": False,
                "branch_points": {t["name"]: p for t, p in zip(tasks, points)},
                "branch_point_losses": record["losses"], "branch_tolerance": tol,
                "tasks": tasks, "phases": {"search": {"step": search["step"], "eval": search["eval"]},
                                           "student": {"step": student["step"]}},
                "teachers": [{"arch": t.arch, "task": task["name"], "kind": task["kind"]}
                             for t, task in zip(teachers, tasks)]}
