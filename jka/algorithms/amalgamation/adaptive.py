"""Adaptive / selective amalgamation (docs/methods.md, "Adaptive amalgamation"; ICCV 2019).

Teachers may overlap in the classes they know. The union of their classes is split into sub-tasks
(``amal.subtasks``, default: the groups of classes known by the same set of teachers); per sample and
sub-task the teacher whose prediction has the least entropy is learned from (``amal.selection=
'entropy'``, judged on the teacher's whole prediction as the reference code does, or on the sub-task's
classes with ``amal.entropy_over='subtask'``; ``'average'`` learns from them all). The job (:func:`run`)
is the paper's two steps, each phase an ordinary training run:

1. :class:`AdaptiveComponent` per sub-task (``WORKDIR/component_<g>``): MSE to the selected teacher's
   raw sub-task logits + per-sample weighted feature matching through 1×1 projections.
2. :class:`AdaptiveStudent` (``WORKDIR/student``): the multi-head student from the frozen components,
   logit MSE with a learnable (bounded) scale per head, folded into the exported linear layer, +
   features.

``amal.calibrate=True`` is jka's variant: before step 1, :func:`calibrate_teachers` fits a label-free
affine map of each teacher's logits on the images two teachers both put in their shared classes, so
heads built from teachers of very different logit scales compare in the student's joint argmax.

The summary is the student's plus the calibration (``eval.calibration_teacher<k>_scale/_bias``, 1 and 0
without it), the selection shares (``eval.selection_subtask<g>_teacher<k>``) and ``eval.overlap_classes``.
"""
from __future__ import annotations

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jka import losses
from jka.algorithms.amalgamation.common import MultiPartAmalgamation
from jka.config import derive, section
from jka.data import load_split, select_classes
from jka.data.augment import to_float
from jka.errors import ConfigError
from jka.losses.amalgamation import select_least_entropy
from jka.train.evaluate import predict_all
from jka.train.phases import Phase, run_phase
from jka.train.teachers import compute_dtype, load_teacher

SELECTIONS = ("entropy", "average")
# The learnable per-head scale is exp(b·tanh(θ/b)), within [1/4, 4]. Unbounded (exp θ), plain SGD could
# drive a head's scale to ~0 before its logits correlate with the target, and then that head can no
# longer learn (digits, uncalibrated teachers: θ_0 = −9.1, the head's classes at 0.0).
SCALE_BOUND = float(np.log(4.0))


def head_scale(log_scale):
    """The per-head logit factor of the student phase, ``exp(b·tanh(θ/b))``."""
    return jnp.exp(SCALE_BOUND * jnp.tanh(log_scale / SCALE_BOUND))


def derive_subtasks(teacher_classes):
    """Group the union of the teachers' classes by the set of teachers that know each class."""
    order, groups = [], {}
    for classes in teacher_classes:
        for c in classes:
            key = tuple(k for k, cs in enumerate(teacher_classes) if c in cs)
            if key not in groups:
                groups[key] = []
                order.append(key)
            if c not in groups[key]:
                groups[key].append(c)
    return [groups[key] for key in order]


ADAPTIVE_DEFAULTS = dict(layers=["block3"], weights=(1.0, 1.0), selection="entropy", subtasks=None,
                         component_steps=None, calibrate=False, entropy_over="teacher")
ENTROPY_OVER = ("teacher", "subtask")


def amal_of(cfg):
    """``cfg.amal`` of adaptive amalgamation, every default filled in."""
    return section(cfg, "amal", ADAPTIVE_DEFAULTS, "adaptive")


def adaptive_weights(amal) -> tuple:
    """``amal.weights`` = (w_logit, w_feat) of both phases' losses."""
    w = tuple(float(v) for v in amal.weights)
    if len(w) != 2:
        raise ConfigError(f"adaptive amalgamation's amal.weights are (w_logit, w_feat); got {w}")
    return w


def subtasks_of(cfg, teacher_classes):
    sub = amal_of(cfg).subtasks
    if sub is None:
        return derive_subtasks(teacher_classes)
    sub = [[int(c) for c in g] for g in sub]
    flat = [c for g in sub for c in g]
    if len(set(flat)) != len(flat):
        raise ConfigError(f"amal.subtasks {sub} repeat a class; each class belongs to one sub-task")
    for g in sub:
        if not any(set(g) <= set(cs) for cs in teacher_classes):
            raise ConfigError(f"no teacher knows all classes of sub-task {g}; split amal.subtasks so each "
                              "sub-task lies inside some teacher's classes")
    return sub


def _restricted_logits(logits, idx):
    return jnp.take(logits, jnp.asarray(idx, jnp.int32), axis=-1)


def selection_weights(logits, selection: str):
    """(B, K) per-sample weights of the K teachers of a sub-task: the one-hot of the teacher whose
    prediction (``logits[k]``) has the least entropy, or 1/K."""
    if selection == "entropy":
        return select_least_entropy(logits)
    b = logits[0].shape[0]
    return jnp.full((b, len(logits)), 1.0 / len(logits), jnp.float32)


def calibrate_teachers(logits, teacher_classes):
    """Label-free per-teacher affine calibration ``[(a_k, b_k)]`` from the teachers' logits on the
    same unlabeled images (``logits[k]``: (N, |classes_k|)). Breadth-first over teachers that share
    classes: teacher k, reached from calibrated teacher j, gets ``a_k = std(u)/std(v)``,
    ``b_k = mean(u) − a_k mean(v)`` with ``u = a_j t_j|S + b_j`` and ``v = t_k|S`` over the shared
    classes S, on the images that both teachers put in S (their argmax is a shared class: both are
    in their own domain there; all images if fewer than two); the first teacher of each connected
    group keeps (1, 0)."""
    cal = [None] * len(logits)
    for root in range(len(logits)):
        if cal[root] is not None:
            continue
        cal[root] = (1.0, 0.0)
        queue = [root]
        while queue:
            j = queue.pop(0)
            for k in range(len(logits)):
                shared = [c for c in teacher_classes[j] if c in teacher_classes[k]]
                if cal[k] is not None or not shared:
                    continue
                a_j, b_j = cal[j]
                lj, lk = np.asarray(logits[j]), np.asarray(logits[k])
                ij = [teacher_classes[j].index(c) for c in shared]
                ik = [teacher_classes[k].index(c) for c in shared]
                claim = np.isin(lj.argmax(1), ij) & np.isin(lk.argmax(1), ik)  # both in their domain
                if claim.sum() < 2:
                    claim = np.ones(len(lj), bool)
                u, v = a_j * lj[claim][:, ij] + b_j, lk[claim][:, ik]
                a = float(u.std() / max(v.std(), 1e-8))
                cal[k] = (a, float(u.mean() - a * v.mean()))
                queue.append(k)
    return cal


def teacher_logits_on(teachers, ds, mean, std, batch_size: int = 256):
    """Each teacher's logits (host numpy) on every image of ``ds`` (inference mode, no labels)."""
    outs = [[] for _ in teachers]
    fns = [jax.jit(lambda v, x, t=t: t(v, x)[0]) for t in teachers]
    for i in range(0, len(ds), batch_size):
        x = to_float(jnp.asarray(ds.images[i:i + batch_size]), mean, std)
        for k, (t, fn) in enumerate(zip(teachers, fns)):
            outs[k].append(np.asarray(fn(t.variables, x.astype(jnp.float32))))
    return [np.concatenate(o) for o in outs]


class Projections(nn.Module):
    """1×1 projections of the learner's features into each target's width, per layer."""

    widths: tuple  # widths[k][l]

    @nn.compact
    def __call__(self, maps, train: bool = False):
        return [[nn.Dense(c, name=f"proj{k}_{l}")(m) for l, (c, m) in enumerate(zip(ws, maps))]
                for k, ws in enumerate(self.widths)]


class AdaptiveComponent(MultiPartAmalgamation):
    """Phase 1: a component net for one sub-task, from the per-sample least-entropy teacher.

    ``subtask``: its dataset classes; ``calibration``: one (scale, bias) per teacher."""

    name = "adaptive_component"
    amal_defaults = ADAPTIVE_DEFAULTS

    def __init__(self, cfg, teachers, subtask, calibration):
        amal = amal_of(cfg)
        self.selection = amal.selection
        if self.selection not in SELECTIONS:
            raise ConfigError(f"amal.selection must be one of {SELECTIONS}, not {self.selection!r}")
        self.entropy_over = amal.entropy_over
        if self.entropy_over not in ENTROPY_OVER:
            raise ConfigError(f"amal.entropy_over must be one of {ENTROPY_OVER}, not {self.entropy_over!r}")
        self.subtask = [int(c) for c in subtask]
        self.knowing = [k for k, t in enumerate(teachers) if set(self.subtask) <= set(t.classes)]
        self.index = {k: [teachers[k].classes.index(c) for c in self.subtask] for k in self.knowing}
        self.layers, self.weights = tuple(amal.layers), adaptive_weights(amal)
        if len(calibration) != len(teachers):
            raise ConfigError(f"the calibration has {len(calibration)} (scale, bias) pairs for {len(teachers)} teachers")
        self.calibration = [(float(a), float(b)) for a, b in calibration]
        super().__init__(cfg, teachers)
        self._select_fn = self._selection_of_images

    def default_student_classes(self, cfg, num_classes):
        return list(self.subtask)

    def load_data(self):
        """Train on every image of the teachers' classes (no labels); test on the sub-task's classes."""
        union = sorted({c for t in self.teachers for c in t.classes})
        full = load_split(self.cfg.data, "train")
        self.student_classes = list(self.subtask)
        self.train_ds = select_classes(full, union)
        self.test_ds = load_split(self.cfg.data, "test", self.student_classes)
        self.mean, self.std = full.mean, full.std

    def eval_groups(self):
        return {}

    def build_modules(self, s_feats, t_feats):
        _, t_maps = self.gather(s_feats, t_feats)
        return Projections(tuple(tuple(m.shape[-1] for m in ms) for ms in t_maps))

    def gather(self, s_feats, t_feats):
        return self.hooked(s_feats, [t_feats[k] for k in self.knowing], self.layers, "teacher", self.knowing)

    def module_inputs(self, s_feats, t_feats):
        return (self.gather(s_feats, t_feats)[0],)

    def weights_of(self, t_out):
        """Raw sub-task logits of the knowing teachers and the per-sample selection weights: the
        entropy of each teacher's whole prediction (``amal.entropy_over='teacher'``, as the reference
        code), or of its prediction restricted to the sub-task's classes (``'subtask'``)."""
        sub = [_restricted_logits(t_out[k][0], self.index[k]) for k in self.knowing]
        judged = sub if self.entropy_over == "subtask" else [t_out[k][0] for k in self.knowing]
        return sub, selection_weights(judged, self.selection)

    def target_logits(self, sub, w):
        """``Σ_k w_k t̃_k|g``: the selected (or averaged) teacher's calibrated sub-task logits."""
        cal = [self.calibration[k] for k in self.knowing]
        return sum(w[:, i:i + 1] * (a * t + b) for i, (t, (a, b)) in enumerate(zip(sub, cal)))

    def amal_loss(self, params, batch_stats, t_out, x, step):
        c, c_feats, c_bs = self.apply_student(params["student"], batch_stats["student"], x, train=True)
        sub, w = self.weights_of(t_out)
        l_logit = losses.mse(c, jax.lax.stop_gradient(self.target_logits(sub, w)))
        projs, b_bs = self.apply_modules(params, batch_stats, c_feats, [f for _, f in t_out])
        _, t_maps = self.gather(c_feats, [f for _, f in t_out])
        per_sample = sum(w[:, i] * sum(losses.per_sample_mse(p, f) for p, f in zip(projs[i], t_maps[i]))
                         for i in range(len(self.knowing)))
        l_feat = jnp.mean(per_sample)
        loss = self.weights[0] * l_logit + self.weights[1] * l_feat
        shares = {f"select_teacher{k}": jnp.mean(w[:, i]) for i, k in enumerate(self.knowing)}
        return loss, ({"student": c_bs, "blocks": b_bs}, {"logit": l_logit, "feat": l_feat, **shares})

    def _selection_of_images(self, state, images):
        x = self.prepare(None, images, augment=False)
        t_out = [(t(t.variables, x)[0], None) if k in self.knowing else (None, None)
                 for k, t in enumerate(self.teachers)]
        return self.weights_of(t_out)[1]

    def evaluate(self, state, mesh):
        out = super().evaluate(state, mesh)
        w = predict_all(self._select_fn, state, self.train_ds, int(self.cfg.data.batch_size), mesh)
        for i, k in enumerate(self.knowing):
            out[f"selection_teacher{k}"] = float(w[:, i].mean())
        return out



class HeadScales(nn.Module):
    """Learnable log-scale per head and 1×1 projections into each component's widths."""

    n_heads: int
    widths: tuple  # widths[g][l]

    @nn.compact
    def __call__(self, maps, train: bool = False):
        log_scale = self.param("log_scale", nn.initializers.zeros, (self.n_heads,))
        return log_scale, Projections(self.widths, name="proj")(maps)


class AdaptiveStudent(MultiPartAmalgamation):
    """Phase 2: the multi-head target student from the frozen component nets (disjoint sub-tasks)."""

    name = "adaptive_student"
    amal_defaults = ADAPTIVE_DEFAULTS

    def __init__(self, cfg, teachers, overlap=()):
        super().__init__(cfg, teachers)
        self.layers = tuple(self.amal.layers)
        self.weights = adaptive_weights(self.amal)
        self.overlap = [int(c) for c in overlap]
        sizes = [len(t.classes) for t in teachers]
        self.bounds = [int(b) for b in np.cumsum(sizes)[:-1]]
        self.head_of = np.repeat(np.arange(len(sizes)), sizes)

    def eval_groups(self):
        pos = {c: i for i, c in enumerate(self.student_classes)}
        groups = {f"subtask{g}": [pos[c] for c in t.classes] for g, t in enumerate(self.teachers)}
        if self.overlap:
            groups["overlap_classes"] = [pos[c] for c in self.overlap if c in pos]
        return groups

    def gather(self, s_feats, t_feats):
        return self.hooked(s_feats, t_feats, self.layers, "component")

    def build_modules(self, s_feats, t_feats):
        _, t_maps = self.gather(s_feats, t_feats)
        return HeadScales(len(self.teachers), tuple(tuple(m.shape[-1] for m in ms) for ms in t_maps))

    def module_inputs(self, s_feats, t_feats):
        return (self.gather(s_feats, t_feats)[0],)

    def scaled(self, logits, log_scale):
        return logits * head_scale(log_scale)[jnp.asarray(self.head_of)]

    def amal_loss(self, params, batch_stats, t_out, x, step):
        s, s_feats, s_bs = self.apply_student(params["student"], batch_stats["student"], x, train=True)
        t_feats = [f for _, f in t_out]
        (log_scale, projs), b_bs = self.apply_modules(params, batch_stats, s_feats, t_feats)
        heads = jnp.split(self.scaled(s, log_scale), self.bounds, axis=-1)
        l_logit = sum(losses.mse(h, t) for h, (t, _) in zip(heads, t_out))
        _, t_maps = self.gather(s_feats, t_feats)
        l_feat = sum(losses.mse(p, f) for pg, fg in zip(projs, t_maps) for p, f in zip(pg, fg))
        loss = self.weights[0] * l_logit + self.weights[1] * l_feat
        return loss, ({"student": s_bs, "blocks": b_bs}, {"logit": l_logit, "feat": l_feat})

    def predict(self, state, images):
        return self.scaled(super().predict(state, images), state.params["blocks"]["log_scale"])

    def export(self, state):
        """The student with each head's scale folded into its final linear layer."""
        arch, n, variables, meta = super().export(state)
        scale = np.asarray(head_scale(state.params["blocks"]["log_scale"]))[self.head_of]
        params = dict(variables["params"])
        heads = [k for k, v in params.items() if isinstance(v, dict) and "kernel" in v and "bias" in v
                 and v["kernel"].ndim == 2 and v["kernel"].shape[-1] == n]
        if len(heads) != 1:
            raise ConfigError(f"cannot find the final linear layer of {arch!r} to fold the head scales into; "
                              "use a zoo model with one Dense classifier")
        head = params[heads[0]]
        params[heads[0]] = {**head, "kernel": head["kernel"] * scale, "bias": head["bias"] * scale}
        return arch, n, {**variables, "params": params}, meta


# -- the job -------------------------------------------------------------------------------------------
def _checked(cfg, teachers):
    if len(teachers) < 2:
        raise ConfigError("algorithm 'adaptive' needs at least two teachers")
    classes = [[int(c) for c in t.classes] for t in teachers]
    return classes, subtasks_of(cfg, classes)


def _student_phase(cfg, workdir, subtasks, teacher_classes) -> Phase:
    """Phase 2: the student learns from the finished component nets of every sub-task."""
    dtype = compute_dtype(cfg)
    components = [load_teacher(os.path.join(workdir, f"component_{g}"), classes, dtype)
                  for g, classes in enumerate(subtasks)]
    overlap = [c for g in subtasks for c in g if sum(c in cs for cs in teacher_classes) > 1]
    return Phase(AdaptiveStudent, cfg, os.path.join(workdir, "student"), components, dict(overlap=overlap))


def run(cfg, workdir: str, teachers) -> dict:
    """Calibrate the teachers, train one component per sub-task, then the student (module docstring)."""
    teacher_classes, subtasks = _checked(cfg, teachers)
    union = sorted({c for cs in teacher_classes for c in cs})
    calibration = [(1.0, 0.0)] * len(teachers)
    if amal_of(cfg).calibrate:
        full = load_split(cfg.data, "train")
        calibration = calibrate_teachers(teacher_logits_on(teachers, select_classes(full, union), full.mean,
                                                           full.std), teacher_classes)
    cal_stats = {f"calibration_teacher{k}_{n}": v for k, ab in enumerate(calibration)
                 for n, v in zip(("scale", "bias"), ab)}
    phases, selection = {}, {}
    component_cfg = derive(cfg, **{"train.steps": int(amal_of(cfg).component_steps or cfg.train.steps)})
    for g, classes in enumerate(subtasks):
        phase = Phase(AdaptiveComponent, component_cfg, os.path.join(workdir, f"component_{g}"), teachers,
                      dict(subtask=classes, calibration=calibration))
        phases[f"component_{g}"] = s = run_phase(phase)
        for key, v in s["eval"].items():
            if key.startswith("selection_"):
                selection[f"selection_subtask{g}_{key[len('selection_'):]}"] = v
    phase = _student_phase(cfg, workdir, subtasks, teacher_classes)
    student = run_phase(phase)
    return {**student, "algorithm": "adaptive", "eval": {**student["eval"], **selection, **cal_stats},
            "subtasks": subtasks, "overlap": phase.options["overlap"],
            "selection": amal_of(cfg).selection,
            "teachers": [{"arch": t.arch, "classes": c} for t, c in zip(teachers, teacher_classes)],
            "phases": {k: {"eval": v["eval"], "step": v["step"]} for k, v in phases.items()},
            "labels_used": False}


def final_phase(cfg, workdir: str, teachers) -> Phase:
    """The phase ``jka eval`` evaluates: the student."""
    teacher_classes, subtasks = _checked(cfg, teachers)
    return _student_phase(cfg, workdir, subtasks, teacher_classes)
