"""Few-shot distillation by progressive network grafting, NetGraft (docs/methods.md, "NetGraft";
AAAI 2021).

A frozen VGG16 teacher (``vgg16_teacher``) and a thinner student (``vgg16_graft``, blocks 4–5 at
256 channels, 1×1 adapters to and from the teacher's widths) see only ``N`` unlabelled training
images per class, chosen with a fixed seed. The only loss compares the logits ``ŝ`` of the teacher
with a grafted part to the logits ``t`` of the untouched teacher:
``L = Σ_batch ‖ŝ/‖ŝ‖ − t/‖t‖‖²``.

* Stage 1 (block grafting): for every block ``b``, the student block with its adapters replaces
  teacher block ``b``; only that block and its adapters train.
* Stage 2 (net grafting): chains of student blocks ``0..k`` (k = 1..4) replace the first teacher
  blocks and train together; the last chain is the whole student, which is exported.

The student's classifier is a copy of the teacher's. The job is nine phases of :data:`PHASE` (options
``start``/``stop``: the blocks grafted), each in its sub-workdir from the previous phase's student
(``train.init_from``). Each phase keeps its last step: the test split is only reported, never used to pick.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jka import paths
from jka.config import derive
from jka.data import load_split
from jka.data.core import ArrayDataset
from jka.errors import ConfigError
from jka.losses import l2_normalize
from jka.methods import common
from jka.methods.api import Method, all_checks, need_teachers
from jka.models import vgg16_graft
from jka.settings import BOOL, integer, optional, setting
from jka.train.evaluate import classification_eval
from jka.train.phases import Phase
from jka.train.program import Program, Split
from jka.train.state import State, make_optimizer

NUM_BLOCKS = 5
TEACHER_ARCH, STUDENT_ARCH = "vgg16_teacher", "vgg16_graft"
CLASSIFIER = ("classifier_fc1", "classifier_bn", "classifier_fc2")
# (name, start, stop): five block-grafting phases, then chains 0..k for k = 1..4.
PHASES = ([(f"block{b}", b, b + 1) for b in range(NUM_BLOCKS)]
          + [(f"chain0-{k}", 0, k + 1) for k in range(1, NUM_BLOCKS)])


@dataclasses.dataclass(frozen=True)
class Settings:
    n_per_class: int = setting(5, integer(1), "N: unlabelled training images per class")
    sample_seed: int = setting(0, integer(0), "the seed that draws them")
    batch_size: Optional[int] = setting(None, optional(integer(1), "None (round(64·N/10))"),
                                        "images per step (at most N·classes)")
    block_steps: int = setting(2000, integer(1), "steps of each block-grafting phase")
    chain_steps: int = setting(3000, integer(1), "steps of each net-grafting phase")
    eval_batch_size: int = setting(256, integer(1), "test images per evaluation batch")
    eval_every_phase: bool = setting(True, BOOL, "evaluate every phase (False: the last one only)")


def normalized_logit_loss(s, t):
    """``Σ_batch ‖s/‖s‖ − t/‖t‖‖²`` (norms over the class axis)."""
    s_hat = l2_normalize(jnp.asarray(s, jnp.float32), axis=-1)
    t_hat = l2_normalize(jnp.asarray(t, jnp.float32), axis=-1)
    return jnp.sum(jnp.square(s_hat - t_hat))


def few_shot_indices(labels: np.ndarray, n_per_class: int, seed: int) -> np.ndarray:
    """``n_per_class`` indices of every class, drawn without replacement with ``seed`` (sorted)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < n_per_class:
            raise ConfigError(f"class {c} has only {len(idx)} training images; lower netgraft.n_per_class "
                              f"(got {n_per_class})")
        out.append(rng.choice(idx, n_per_class, replace=False))
    return np.sort(np.concatenate(out))


def block_param_names(b: int) -> set:
    """Top-level parameter names of student block ``b`` and its adapters."""
    return ({f"convs_{b}_{j}" for j in range(vgg16_graft.NUM_CONVS[b])} | {f"adapters_out_{b}"}
            | ({f"adapters_in_{b}"} if b > 0 else set()))


def default_batch_size(n_per_class: int) -> int:
    """NetGraft's batch: 64·N/10."""
    return max(1, int(round(64 * n_per_class / 10)))


def grafted_logits(teacher, student, student_vars, teacher_vars, x, start: int, stop: int):
    """Teacher blocks before ``start`` → student chain ``start..stop − 1`` → teacher blocks and head."""
    tv = jax.lax.stop_gradient(teacher_vars)
    h = teacher.apply(tv, x, 0, start, method="blocks")
    h = student.apply(student_vars, h, start, stop, method="chain")
    h = teacher.apply(tv, h, stop, NUM_BLOCKS, method="blocks")
    return teacher.apply(tv, h, False, method="head")


def few_shot_split(cfg, s: Settings):
    """(the run's data with N training images per class, their indices in the training split)."""
    full = load_split(cfg.data, "train")
    idx = few_shot_indices(full.labels, s.n_per_class, s.sample_seed)
    train = ArrayDataset(full.images[idx], full.labels[idx], full.num_classes, full.mean, full.std)
    return Split(train, load_split(cfg.data, "test"), full.mean, full.std, list(range(full.num_classes))), idx


def build_phase(ctx):
    """One phase: student blocks ``start .. stop − 1`` (options) replace the teacher's and train."""
    s, teacher = ctx.settings, ctx.teachers[0]
    start, stop = int(ctx.options.get("start", 0)), int(ctx.options.get("stop", NUM_BLOCKS))
    if len(ctx.teachers) != 1 or teacher.arch != TEACHER_ARCH:
        raise ConfigError(f"netgraft needs exactly one teacher of arch {TEACHER_ARCH!r} "
                          f"(got {[t.arch for t in ctx.teachers]})")
    if not 0 <= start < stop <= NUM_BLOCKS:
        raise ConfigError(f"a netgraft phase grafts blocks start..stop with 0 <= start < stop <= {NUM_BLOCKS}; "
                          f"got {start}, {stop}")
    width = float(dict(ctx.cfg.model.get("kwargs", {})).get("width", 1.0))
    if float(teacher.kwargs.get("width", 1.0)) != width:
        raise ConfigError("netgraft: model.kwargs.width must equal the teacher's width "
                          f"({teacher.kwargs.get('width', 1.0)}) so the adapters match the teacher's channels")
    data, indices = few_shot_split(ctx.cfg, s)
    net = common.student_net(ctx, len(data.classes))
    prepare = common.preparer(ctx.cfg, data, ctx.dtype)
    trainable = set().union(*(block_param_names(b) for b in range(start, stop)))

    def init(rng, batch):
        k_init, k_state = jax.random.split(rng)
        variables = net.init(k_init, prepare(k_init, batch["image"][:1], augment=False))
        params, batch_stats = dict(variables["params"]), dict(variables.get("batch_stats", {}))
        t_vars = teacher.variables  # the student's classifier is the teacher's
        params.update({k: v for k, v in t_vars["params"].items() if k in CLASSIFIER})
        batch_stats.update({k: v for k, v in t_vars.get("batch_stats", {}).items() if k in CLASSIFIER})
        variables = jax.tree.map(jnp.asarray, {"params": params, "batch_stats": batch_stats})
        labels = {"student": {k: jax.tree.map(lambda _, k=k: "train" if k in trainable else "frozen", v)
                              for k, v in params.items()}}
        tx = optax.multi_transform({"train": make_optimizer(ctx.cfg.optim, ctx.steps),
                                    "frozen": optax.set_to_zero()}, labels)
        return State.create(k_state, {"student": variables}, {"student": (("student",), tx)})

    def graft(state_vars, teacher_vars, x):
        return grafted_logits(teacher.module, net.module, state_vars, teacher_vars, x, start, stop)

    def loss(params, batch_stats, teacher_vars, x, batch, rng, step):
        t, _ = teacher(teacher_vars[0], x)
        s_logits = graft({"params": params["student"], "batch_stats": batch_stats["student"]}, teacher_vars[0], x)
        value = normalized_logit_loss(s_logits, t)
        agree = jnp.mean(jnp.argmax(s_logits, -1) == jnp.argmax(t, -1))
        return value, ({"student": batch_stats["student"]}, {"graft": value, "agreement": agree})

    final = (start, stop) == (0, NUM_BLOCKS)
    student = common.predictor(net, prepare)

    def grafted(state_and_teacher, images):
        state, teacher_vars = state_and_teacher
        return graft(state.variables("student"), teacher_vars, prepare(None, images, augment=False))

    def evaluate(state, ectx) -> dict:
        """Test accuracy of the grafted teacher, and of the student alone in the last phase."""
        if not (final or s.eval_every_phase):
            return {}
        bs = s.eval_batch_size
        graft_eval = classification_eval(grafted, (state, teacher.variables), data.test, bs, ectx.mesh)
        out = {"accuracy": graft_eval["accuracy"]}
        if final:
            out["student_accuracy"] = classification_eval(student, state, data.test, bs, ectx.mesh)["accuracy"]
        return out

    return Program(
        name="netgraft_phase", data=data, teachers=ctx.teachers, batches=common.batches(ctx.cfg, data, False),
        steps=ctx.steps, init=init, step=common.loss_step(prepare, loss), evaluate=evaluate,
        export=common.export_part(net, data, few_shot_indices=[int(i) for i in indices]),
        learning_rate=common.learning_rate(ctx.cfg.optim, ctx.steps), start_from=common.start_from_student("netgraft"),
        details={"model": net.arch, "model_kwargs": net.kwargs})


PHASE = Method("netgraft_phase", build=build_phase, settings=Settings, section="netgraft")


def phase_dir(workdir: str, i: int) -> str:
    return os.path.join(workdir, f"phase{i}_{PHASES[i][0]}")


def phase(cfg, s: Settings, workdir: str, teacher, i: int) -> Phase:
    """Phase ``i`` of :data:`PHASES`, starting from phase ``i − 1``'s student."""
    name, start, stop = PHASES[i]
    n = s.n_per_class
    sub = derive(cfg, **{"data.batch_size": int(min(s.batch_size or default_batch_size(n), n * len(teacher.classes))),
                         "train.steps": s.block_steps if name.startswith("block") else s.chain_steps,
                         "train.init_from": phase_dir(workdir, i - 1) if i else ""})
    return Phase(PHASE, sub, phase_dir(workdir, i), [teacher], dict(start=start, stop=stop), name=name,
                 final=i == len(PHASES) - 1)


def teacher_accuracy(teacher_path: str):
    """The teacher's test accuracy from its own training summary (None when it was not trained here)."""
    path = os.path.join(teacher_path, "summary.json") if teacher_path else ""
    if not path or not paths.isfile(path):
        return None
    return paths.read_json(path).get("eval", {}).get("accuracy")


def plan(job):
    """The whole NetGraft schedule: block grafting, then net grafting (module docstring)."""
    s, teacher = job.settings, job.teachers[0]
    results, total = [], 0
    for i, (name, start, stop) in enumerate(PHASES):
        p = phase(job.cfg, s, job.workdir, teacher, i)
        summary = yield p
        results.append({"phase": name, "blocks": [start, stop], **summary["eval"]})
        total += int(p.cfg.train.steps)
    final = results[-1]
    return {"step": total, "algorithm": "netgraft",
            "eval": {"accuracy": final.get("student_accuracy"), "grafted_accuracy": final.get("accuracy"),
                     "teacher_accuracy": teacher_accuracy(teacher.path), "n_per_class": s.n_per_class},
            "phases": results, "student_workdir": phase_dir(job.workdir, len(PHASES) - 1),
            "teacher_workdir": teacher.path, "labels_used": False}


def check_student(cfg, s: Settings) -> None:
    if cfg.model.name != STUDENT_ARCH:
        raise ConfigError(f"netgraft trains model.name={STUDENT_ARCH!r}, not {cfg.model.name!r}")


METHOD = Method("netgraft", plan=plan, settings=Settings,
                check=all_checks(need_teachers("netgraft", 1, 1), check_student),
                summary="few-shot distillation by grafting student blocks into a VGG16 teacher, then chains")
