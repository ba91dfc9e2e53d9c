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

The student's classifier is a copy of the teacher's (it is the teacher-width head every grafted
network ends in). Every phase is one training run of :class:`NetGraftPhase` in its own sub-workdir,
starting from the previous phase's student (``train.init_from``); the job (:func:`run`) chains them,
and finished phases are skipped. No model selection: each phase keeps its last step, so the test
split is only reported, never used to pick.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jka import paths
from jka.algorithms.base import Algorithm
from jka.config import derive, section
from jka.data import load_split
from jka.data.core import ArrayDataset
from jka.errors import ConfigError
from jka.losses import l2_normalize
from jka.models import vgg16_graft
from jka.train.phases import Phase, run_phase
from jka.train.evaluate import classification_eval
from jka.train.state import TrainState, make_optimizer

NUM_BLOCKS = 5
# ``cfg.netgraft``: N images per class (drawn with sample_seed), the batch (default 64·N/10), steps
# per block / per chain phase, evaluation; start/stop are the blocks a phase grafts (set by the job).
NETGRAFT_DEFAULTS = dict(n_per_class=5, sample_seed=0, batch_size=None, block_steps=2000, chain_steps=3000,
                         eval_batch_size=256, eval_every_phase=True, start=0, stop=5)
TEACHER_ARCH, STUDENT_ARCH = "vgg16_teacher", "vgg16_graft"



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
    names = {f"convs_{b}_{j}" for j in range(vgg16_graft.NUM_CONVS[b])} | {f"adapters_out_{b}"}
    if b > 0:
        names.add(f"adapters_in_{b}")
    return names


def default_batch_size(n_per_class: int) -> int:
    """NetGraft's batch: 64·N/10."""
    return max(1, int(round(64 * n_per_class / 10)))


class NetGraftPhase(Algorithm):
    """One grafting phase: student blocks ``netgraft.start .. netgraft.stop - 1`` (with their
    adapters) replace the same teacher blocks and train on the few-shot images."""

    name = "netgraft_phase"
    uses_labels = False

    def __init__(self, cfg, teachers):
        if len(teachers) != 1 or teachers[0].arch != TEACHER_ARCH:
            raise ConfigError(f"netgraft needs exactly one teacher of arch {TEACHER_ARCH!r} "
                              f"(got {[t.arch for t in teachers]})")
        if cfg.model.name != STUDENT_ARCH:
            raise ConfigError(f"netgraft trains model.name={STUDENT_ARCH!r}, not {cfg.model.name!r}")
        self.ng = ng = section(cfg, "netgraft", NETGRAFT_DEFAULTS, "netgraft")
        self.start, self.stop = int(ng.start), int(ng.stop)
        if not 0 <= self.start < self.stop <= NUM_BLOCKS:
            raise ConfigError(f"netgraft.start/stop must satisfy 0 <= start < stop <= {NUM_BLOCKS}; "
                              f"got {self.start}, {self.stop}")
        self.n_per_class = int(ng.n_per_class)
        if self.n_per_class < 1:
            raise ConfigError(f"netgraft.n_per_class must be >= 1, got {self.n_per_class}")
        super().__init__(cfg, teachers)
        t_kw = {k: v for k, v in teachers[0].kwargs.items()}
        if float(t_kw.get("width", 1.0)) != float(self.student_kwargs.get("width", 1.0)):
            raise ConfigError("netgraft: model.kwargs.width must equal the teacher's width "
                              f"({t_kw.get('width', 1.0)}) so the adapters match the teacher's channels")
        self.trainable = set().union(*(block_param_names(b) for b in range(self.start, self.stop)))

    # -- few-shot data -------------------------------------------------------------------------------
    def load_data(self):
        full = load_split(self.cfg.data, "train")
        self.student_classes = list(range(full.num_classes))
        idx = few_shot_indices(full.labels, int(self.ng.n_per_class), int(self.ng.sample_seed))
        self.train_ds = ArrayDataset(full.images[idx], full.labels[idx], full.num_classes, full.mean, full.std)
        self.few_shot_indices = idx
        self.test_ds = load_split(self.cfg.data, "test")
        self.mean, self.std = full.mean, full.std

    # -- state -----------------------------------------------------------------------------------------
    def init(self, rng, batch):
        k_init, k_state = jax.random.split(rng)
        x = self.prepare(k_init, batch["image"][:1], augment=False)
        variables = self.student.init(k_init, x, train=False)
        params, batch_stats = dict(variables["params"]), dict(variables.get("batch_stats", {}))
        t_vars = self.teachers[0].variables  # the student's classifier is the teacher's
        for k in ("classifier_fc1", "classifier_bn", "classifier_fc2"):
            if k in t_vars["params"]:
                params[k] = t_vars["params"][k]
            if k in t_vars.get("batch_stats", {}):
                batch_stats[k] = t_vars["batch_stats"][k]
        params = jax.tree.map(jnp.asarray, params)
        batch_stats = jax.tree.map(jnp.asarray, batch_stats)
        labels = {k: jax.tree.map(lambda _, k=k: "train" if k in self.trainable else "frozen", v)
                  for k, v in params.items()}
        tx = optax.multi_transform({"train": make_optimizer(self.cfg.optim, self.total_steps),
                                    "frozen": optax.set_to_zero()}, labels)
        return TrainState.create(params, tx, k_state, batch_stats)

    # -- grafted forward and loss ----------------------------------------------------------------------
    def grafted_logits(self, params, batch_stats, teacher_vars, x):
        """Teacher blocks before ``start`` → student chain → teacher blocks from ``stop`` → teacher head."""
        teacher = self.teachers[0].module
        tv = jax.lax.stop_gradient(teacher_vars)
        h = teacher.apply(tv, x, 0, self.start, method="blocks")
        h = self.student.apply({"params": params, "batch_stats": batch_stats}, h, self.start, self.stop,
                               method="chain")
        h = teacher.apply(tv, h, self.stop, NUM_BLOCKS, method="blocks")
        return teacher.apply(tv, h, False, method="head")

    def loss(self, params, batch_stats, teacher_vars, x, batch, rng):
        t, _ = self.teachers[0](teacher_vars[0], x)
        s = self.grafted_logits(params, batch_stats, teacher_vars[0], x)
        loss = normalized_logit_loss(s, t)
        agree = jnp.mean(jnp.argmax(s, -1) == jnp.argmax(t, -1))
        return loss, (batch_stats, {"graft": loss, "agreement": agree})

    # -- evaluation --------------------------------------------------------------------------------------
    def _grafted_predict(self, state_and_teacher, images):
        state, teacher_vars = state_and_teacher
        x = self.prepare(None, images, augment=False)
        return self.grafted_logits(state.params, state.batch_stats, teacher_vars, x)

    def evaluate(self, state, mesh) -> dict:
        """Test accuracy of the grafted teacher; with the whole chain grafted, also of the student alone.

        Only reported, never used to choose anything; ``netgraft.eval_every_phase=False`` skips it
        before the last phase."""
        bs = int(self.ng.eval_batch_size)
        tv = self.teachers[0].variables
        final = (self.start, self.stop) == (0, NUM_BLOCKS)
        if not (final or self.ng.eval_every_phase):
            return {}
        out = {"accuracy": classification_eval(self._grafted_predict, (state, tv), self.test_ds, bs, mesh)["accuracy"]}
        if final:
            out["student_accuracy"] = classification_eval(self.predict, state, self.test_ds, bs, mesh)["accuracy"]
        return out

    def export(self, state):
        arch, n, variables, meta = super().export(state)
        return arch, n, variables, {**meta, "few_shot_indices": [int(i) for i in self.few_shot_indices]}


def phases() -> list[tuple[str, int, int]]:
    """(name, start, stop): five block-grafting phases, then chains 0..k for k = 1..4."""
    out = [(f"block{b}", b, b + 1) for b in range(NUM_BLOCKS)]
    out += [(f"chain0-{k}", 0, k + 1) for k in range(1, NUM_BLOCKS)]
    return out


def _phase(cfg, workdir, teacher, i: int) -> Phase:
    """Phase ``i`` of :func:`phases`, starting from phase ``i − 1``'s student."""
    ng = section(cfg, "netgraft", NETGRAFT_DEFAULTS, "netgraft")
    n = int(ng.n_per_class)
    name, start, stop = phases()[i]
    batch_size = ng.batch_size or default_batch_size(n)
    sub = derive(cfg, **{"data.batch_size": int(min(batch_size, n * len(teacher.classes))),
                         "train.steps": int(ng.block_steps if name.startswith("block") else ng.chain_steps),
                         "train.init_from": _phase_dir(workdir, i - 1) if i else "",
                         "netgraft.start": start, "netgraft.stop": stop})
    return Phase(NetGraftPhase, sub, _phase_dir(workdir, i), [teacher])


def _phase_dir(workdir: str, i: int) -> str:
    return os.path.join(workdir, f"phase{i}_{phases()[i][0]}")


def run(cfg, workdir: str, teachers) -> dict:
    """The whole NetGraft schedule: block grafting, then net grafting (module docstring)."""
    if len(teachers) != 1:
        raise ConfigError("netgraft needs exactly one entry in teachers (the VGG16 teacher)")
    teacher_path = teachers[0].path
    results, total = [], 0
    for i in range(len(phases())):
        phase = _phase(cfg, workdir, teachers[0], i)
        summary = run_phase(phase)
        name, start, stop = phases()[i]
        results.append({"phase": name, "blocks": [start, stop], **summary["eval"]})
        total += int(phase.cfg.train.steps)
    final = results[-1]
    return {
        "step": total,
        "algorithm": "netgraft",
        "eval": {"accuracy": final["student_accuracy"], "grafted_accuracy": final["accuracy"],
                 "teacher_accuracy": _teacher_accuracy(teacher_path), "n_per_class": int(cfg.netgraft.n_per_class)},
        "phases": results,
        "student_workdir": _phase_dir(workdir, len(phases()) - 1),
        "teacher_workdir": teacher_path,
        "labels_used": False,
    }


def final_phase(cfg, workdir: str, teachers) -> Phase:
    """The phase ``jka eval`` evaluates: the last chain, the whole student grafted."""
    return _phase(cfg, workdir, teachers[0], len(phases()) - 1)


def _teacher_accuracy(teacher_path: str):
    """The teacher's test accuracy from its own training summary (None when it was not trained here)."""
    path = os.path.join(teacher_path, "summary.json")
    if not paths.isfile(path):
        return None
    return paths.read_json(path).get("eval", {}).get("accuracy")
