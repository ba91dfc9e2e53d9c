"""Adaptive / selective amalgamation (docs/methods.md, "Adaptive amalgamation"; ICCV 2019).

Teachers may overlap in the classes they know. Their union is split into sub-tasks (``adaptive.subtasks``,
default: the classes known by the same set of teachers); per sample and sub-task the least-entropy
teacher is learned from (:func:`weights_of`). The job (:func:`plan`), the paper's two steps:

1. :data:`COMPONENT` per sub-task (``WORKDIR/component_<g>``): MSE to the selected teacher's raw
   sub-task logits + per-sample weighted feature matching through 1×1 projections.
2. :data:`STUDENT` (``WORKDIR/student``, final): the multi-head student from the frozen components,
   logit MSE with a bounded learnable scale per head (folded into the exported linear layer) + features.

``adaptive.calibrate=True`` (jka's variant) first fits a label-free affine map of each teacher's logits
(:func:`calibrate_teachers`, kept in ``WORKDIR/calibration.json``), so heads from teachers of very
different logit scales compare in the student's joint argmax. The summary adds the calibration
(``eval.calibration_teacher<k>_scale/_bias``), the selection shares (``eval.selection_subtask<g>_teacher<k>``)
and ``eval.overlap_classes``.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jka import losses, paths
from jka.config import derive
from jka.data import load_split, select_classes
from jka.data.augment import to_float
from jka.errors import ConfigError
from jka.losses.amalgamation import select_least_entropy
from jka.methods import common
from jka.methods.amalgamation import parts
from jka.methods.api import Method, all_checks, need_teachers
from jka.settings import BOOL, Rule, choice, integer, number, optional, sequence, setting
from jka.train.evaluate import predict_all
from jka.train.phases import Phase
from jka.train.teachers import compute_dtype, load_teacher

SELECTIONS = ("entropy", "average")
ENTROPY_OVER = ("teacher", "subtask")
CALIBRATION_FILE = "calibration.json"
# The learnable per-head scale is exp(b·tanh(θ/b)), within [1/4, 4]. Unbounded (exp θ), plain SGD could
# drive a head's scale to ~0 before its logits correlate with the target, and then that head can no
# longer learn (digits, uncalibrated teachers: θ_0 = −9.1, the head's classes at 0.0).
SCALE_BOUND = float(np.log(4.0))
SUBTASKS = Rule(lambda v: v is None or (sequence(sequence(integer(0))).ok(v) and len(v) > 0 and all(v)),
                "None (derived from the teachers) or a list of non-empty lists of class indices >= 0")


@dataclasses.dataclass(frozen=True)
class Settings:
    layers: list = setting(["block3"], parts.LAYERS, "feature names matched (learner's and targets')")
    weights: tuple = setting((1.0, 1.0), sequence(number(0), 2), "(w_logit, w_feat) of both phases' losses")
    selection: str = setting("entropy", choice("selection (adaptive.selection)", SELECTIONS),
                             "entropy: the least-entropy teacher per sample; average: all at 1/K")
    subtasks: Optional[list] = setting(None, SUBTASKS, "lists of classes (None: grouped by who knows them)")
    component_steps: Optional[int] = setting(None, optional(integer(1), "None (train.steps)"),
                                             "steps of each component phase")
    calibrate: bool = setting(False, BOOL, "fit a label-free affine map of each teacher's logits first")
    entropy_over: str = setting("teacher", choice("entropy_over (adaptive.entropy_over)", ENTROPY_OVER),
                                "judge the teacher's whole prediction, or only the sub-task's classes")


def head_scale(log_scale):
    """The per-head logit factor of the student phase, ``exp(b·tanh(θ/b))``."""
    return jnp.exp(SCALE_BOUND * jnp.tanh(log_scale / SCALE_BOUND))


def derive_subtasks(teacher_classes):
    """Group the union of the teachers' classes by the set of teachers that know each class."""
    groups = {}  # in the order the groups are first met
    for classes in teacher_classes:
        for c in classes:
            group = groups.setdefault(tuple(k for k, cs in enumerate(teacher_classes) if c in cs), [])
            if c not in group:
                group.append(c)
    return list(groups.values())


def subtasks_of(s: Settings, teacher_classes=None):
    """``adaptive.subtasks`` (checked against ``teacher_classes`` if given), else :func:`derive_subtasks`'s."""
    if s.subtasks is None:
        return derive_subtasks(teacher_classes)
    sub = [[int(c) for c in g] for g in s.subtasks]
    flat = [c for g in sub for c in g]
    if len(set(flat)) != len(flat):
        raise ConfigError(f"adaptive.subtasks {sub} repeat a class; each class belongs to one sub-task")
    for g in sub if teacher_classes is not None else ():
        if not any(set(g) <= set(cs) for cs in teacher_classes):
            raise ConfigError(f"no teacher knows all classes of sub-task {g}; split adaptive.subtasks so each "
                              "sub-task lies inside some teacher's classes")
    return sub


def weights_of(s: Settings, knowing, index, logits):
    """(the knowing teachers' raw sub-task logits, their (B, K) per-sample weights): the one-hot of the
    least-entropy teacher, judged on its whole prediction (``entropy_over='teacher'``, as the reference
    code) or on the sub-task's classes (``'subtask'``); or 1/K each (``selection='average'``)."""
    sub = [jnp.take(logits[k], jnp.asarray(index[k], jnp.int32), axis=-1) for k in knowing]
    judged = sub if s.entropy_over == "subtask" else [logits[k] for k in knowing]
    if s.selection == "entropy":
        return sub, select_least_entropy(judged)
    return sub, jnp.full((judged[0].shape[0], len(judged)), 1.0 / len(judged), jnp.float32)


def target_logits(sub, w, calibration):
    """``Σ_k w_k t̃_k|g``: the selected (or averaged) knowing teachers' calibrated sub-task logits."""
    return sum(w[:, i:i + 1] * (a * t + b) for i, (t, (a, b)) in enumerate(zip(sub, calibration)))


def calibrate_teachers(logits, teacher_classes):
    """Label-free affine calibration ``[(a_k, b_k)]`` from the teachers' logits on the same images
    (``logits[k]``: (N, |classes_k|)), breadth-first over teachers that share classes S: k, reached from
    calibrated j, gets ``a_k = std(u)/std(v)``, ``b_k = mean(u) − a_k mean(v)`` with ``u = a_j t_j|S + b_j``,
    ``v = t_k|S`` on the images both put in S (all if fewer than two); each group's first keeps (1, 0)."""
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


class HeadScales(nn.Module):
    """Learnable log-scale per head and 1×1 projections into each component's widths."""

    n_heads: int
    widths: tuple  # widths[g][l]

    @nn.compact
    def __call__(self, maps, train: bool = False):
        log_scale = self.param("log_scale", nn.initializers.zeros, (self.n_heads,))
        return log_scale, Projections(self.widths, name="proj")(maps)


def projected(ctx, net, data, gather, make):
    """(``make(target widths)``: the blocks sized from the features' shapes, their ``inputs``)."""
    _, t_maps = parts.shapes(ctx, net, data, gather)
    return make(tuple(tuple(m.shape[-1] for m in ms) for ms in t_maps)), lambda s, t: (gather(s, t)[0],)


# -- phase 1: one component net per sub-task ----------------------------------------------------------
def who_knows(subtask, teacher_classes):
    """(the teachers that know every class of ``subtask``, each one's output index of those classes)."""
    knowing = [k for k, cs in enumerate(teacher_classes) if set(subtask) <= set(cs)]
    return knowing, {k: [list(teacher_classes[k]).index(c) for c in subtask] for k in knowing}


def build_component(ctx):
    """A component net for the ``subtask`` option's classes (``calibration``: one (scale, bias) per teacher)."""
    s, teachers = ctx.settings, ctx.teachers
    subtask = [int(c) for c in ctx.options["subtask"]]
    calibration = [(float(a), float(b)) for a, b in ctx.options["calibration"]]
    if len(calibration) != len(teachers):
        raise ConfigError(f"the calibration has {len(calibration)} (scale, bias) pairs for {len(teachers)} teachers")
    knowing, index = who_knows(subtask, [t.classes for t in teachers])
    cal = [calibration[k] for k in knowing]
    # Trained on every image of the teachers' classes (no labels); tested on the sub-task's classes.
    data = common.split(ctx.cfg, subtask, sorted({c for t in teachers for c in t.classes}))
    net = common.student_net(ctx, len(subtask))

    def gather(s_feats, t_feats):
        return parts.hooked(s_feats, [t_feats[k] for k in knowing], s.layers, "adaptive.layers", "teacher", knowing)

    module, inputs = projected(ctx, net, data, gather, Projections)
    w_logit, w_feat = (float(w) for w in s.weights)

    def loss(params, batch_stats, t_out, x, step):
        c, c_feats, c_bs = net.forward(params, batch_stats, x, train=True)
        sub, w = weights_of(s, knowing, index, [t for t, _ in t_out])
        l_logit = losses.mse(c, jax.lax.stop_gradient(target_logits(sub, w, cal)))
        c_maps, t_maps = gather(c_feats, [f for _, f in t_out])
        projs, b_bs = parts.apply_blocks(module, params, batch_stats, (c_maps,))
        per_sample = sum(w[:, i] * sum(losses.per_sample_mse(p, f) for p, f in zip(projs[i], t_maps[i]))
                         for i in range(len(knowing)))
        l_feat = jnp.mean(per_sample)
        shares = {f"select_teacher{k}": jnp.mean(w[:, i]) for i, k in enumerate(knowing)}
        return (w_logit * l_logit + w_feat * l_feat,
                ({"student": c_bs, "blocks": b_bs}, {"logit": l_logit, "feat": l_feat, **shares}))

    prepare = common.preparer(ctx.cfg, data, ctx.dtype)

    def selected(state, images):
        x = prepare(None, images, augment=False)
        return weights_of(s, knowing, index, [t(t.variables, x)[0] if k in knowing else None
                                              for k, t in enumerate(teachers)])[1]

    def selection_shares(state, ectx):
        w = predict_all(selected, state, data.train, int(ctx.cfg.data.batch_size), ectx.mesh)
        return {f"selection_teacher{k}": float(w[:, i].mean()) for i, k in enumerate(knowing)}

    return parts.program(ctx, "adaptive_component", data, net, module, inputs, loss, groups={},
                         more_eval=selection_shares)


# -- phase 2: the student from the components ----------------------------------------------------------
def scaled(logits, log_scale, heads):
    """The student's logits, each times its head's scale (``heads``: the head of each output)."""
    return logits * head_scale(log_scale)[jnp.asarray(heads)]


def folded(out, log_scale, heads):
    """The exported student ``out`` with each head's scale folded into its final linear layer."""
    scale = np.asarray(head_scale(log_scale))[heads]
    params = dict(out.variables["params"])
    found = [k for k, v in params.items() if isinstance(v, dict) and "kernel" in v and "bias" in v
             and v["kernel"].ndim == 2 and v["kernel"].shape[-1] == out.num_classes]
    if len(found) != 1:
        raise ConfigError(f"cannot find the final linear layer of {out.arch!r} to fold the head scales into; "
                          "use a zoo model with one Dense classifier")
    head = params[found[0]]
    params[found[0]] = {**head, "kernel": head["kernel"] * scale, "bias": head["bias"] * scale}
    return dataclasses.replace(out, variables={**out.variables, "params": params})


def build_student(ctx):
    """The multi-head student from the frozen components (option ``overlap``: classes several teachers know)."""
    s, components = ctx.settings, ctx.teachers
    overlap = [int(c) for c in ctx.options.get("overlap", ())]
    data, net = parts.union_student(ctx, "adaptive")
    sizes = [len(t.classes) for t in components]
    bounds, heads = [int(b) for b in np.cumsum(sizes)[:-1]], np.repeat(np.arange(len(sizes)), sizes)

    def gather(s_feats, t_feats):
        return parts.hooked(s_feats, t_feats, s.layers, "adaptive.layers", "component")

    module, inputs = projected(ctx, net, data, gather, lambda widths: HeadScales(len(components), widths))
    w_logit, w_feat = (float(w) for w in s.weights)

    def loss(params, batch_stats, t_out, x, step):
        logits, s_feats, s_bs = net.forward(params, batch_stats, x, train=True)
        s_maps, t_maps = gather(s_feats, [f for _, f in t_out])
        (log_scale, projs), b_bs = parts.apply_blocks(module, params, batch_stats, (s_maps,))
        split = jnp.split(scaled(logits, log_scale, heads), bounds, axis=-1)
        l_logit = sum(losses.mse(h, t) for h, (t, _) in zip(split, t_out))
        l_feat = sum(losses.mse(p, f) for pg, fg in zip(projs, t_maps) for p, f in zip(pg, fg))
        return (w_logit * l_logit + w_feat * l_feat,
                ({"student": s_bs, "blocks": b_bs}, {"logit": l_logit, "feat": l_feat}))

    logits_of = common.predictor(net, common.preparer(ctx.cfg, data, ctx.dtype))
    pos = {c: i for i, c in enumerate(data.classes)}
    groups = {f"subtask{g}": [pos[c] for c in t.classes] for g, t in enumerate(components)}
    if overlap:
        groups["overlap_classes"] = [pos[c] for c in overlap if c in pos]
    return parts.program(
        ctx, "adaptive_student", data, net, module, inputs, loss, groups=groups,
        predict=lambda state, images: scaled(logits_of(state, images), state.params["blocks"]["log_scale"], heads),
        export=lambda state: folded(common.export_part(net, data)(state), state.params["blocks"]["log_scale"], heads))


COMPONENT = Method("adaptive_component", build=build_component, settings=Settings, section="adaptive")
STUDENT = Method("adaptive_student", build=build_student, settings=Settings, section="adaptive")


# -- the job -------------------------------------------------------------------------------------------
def calibration_of(job, teacher_classes):
    """The teachers' calibration: identity unless ``adaptive.calibrate`` (then kept in ``calibration.json``)."""
    path = os.path.join(job.workdir, CALIBRATION_FILE)
    if not job.settings.calibrate or job.rehearsal:
        return [(1.0, 0.0)] * len(job.teachers)
    if not paths.isfile(path):
        full = load_split(job.cfg.data, "train")
        images = select_classes(full, sorted({c for cs in teacher_classes for c in cs}))
        logits = teacher_logits_on(job.teachers, images, full.mean, full.std)
        paths.write_json(path, {"calibration": calibrate_teachers(logits, teacher_classes)})
    return [tuple(ab) for ab in paths.read_json(path)["calibration"]]


def plan(job):
    """Calibrate the teachers, train one component per sub-task, then the student (module docstring)."""
    cfg, s, teachers = job.cfg, job.settings, job.teachers
    teacher_classes = [[int(c) for c in t.classes] for t in teachers]
    subtasks = subtasks_of(s, teacher_classes)
    calibration = calibration_of(job, teacher_classes)
    component_cfg = derive(cfg, **{"train.steps": int(s.component_steps or cfg.train.steps)})
    phases, selection = {}, {}
    for g, classes in enumerate(subtasks):
        name = f"component_{g}"
        phases[name] = done = yield Phase(COMPONENT, component_cfg, os.path.join(job.workdir, name), teachers,
                                          dict(subtask=classes, calibration=calibration), name=name)
        selection.update({f"selection_subtask{g}_{key[len('selection_'):]}": v
                          for key, v in done["eval"].items() if key.startswith("selection_")})
    components = [load_teacher(os.path.join(job.workdir, f"component_{g}"), classes, compute_dtype(cfg))
                  for g, classes in enumerate(subtasks)]
    overlap = [c for g in subtasks for c in g if sum(c in cs for cs in teacher_classes) > 1]
    student = yield Phase(STUDENT, cfg, os.path.join(job.workdir, "student"), components, dict(overlap=overlap),
                          name="student", final=True)
    cal_stats = {f"calibration_teacher{k}_{n}": v for k, ab in enumerate(calibration)
                 for n, v in zip(("scale", "bias"), ab)}
    return {**student, "algorithm": "adaptive", "eval": {**student["eval"], **selection, **cal_stats},
            "subtasks": subtasks, "overlap": overlap, "selection": s.selection,
            "teachers": [{"arch": t.arch, "classes": c} for t, c in zip(teachers, teacher_classes)],
            "phases": {k: {"eval": v["eval"], "step": v["step"]} for k, v in phases.items()},
            "labels_used": False}


config_checks = all_checks(need_teachers("adaptive", 2), lambda cfg, s: s.subtasks is None or subtasks_of(s))
METHOD = Method("adaptive", plan=plan, settings=Settings, check=config_checks,
                summary="selective amalgamation from overlapping teachers (a job: components, then the student)")
