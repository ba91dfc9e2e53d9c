"""What every algorithm shares: a student classifier, frozen teachers, input preparation.

An algorithm is built from ``(cfg, teachers)`` and gives the training loop
(:func:`jka.train.loop.fit`):

- ``train_batches(seed)``: step-indexed host batches (:class:`jka.data.Batches`);
- ``init(rng, batch) -> state`` and, for ``train.init_from``, ``start_from(state, variables, info)``;
- ``train_step(state, teacher_vars, batch) -> (state, metrics)``: one pure function, compiled once;
- ``evaluate(state, mesh) -> dict`` on the held-out split;
- ``export(state) -> (arch, num_classes, variables, model.json fields)``: the run's model.

This base class is a classifier trained with ``loss``: subclasses usually override only ``loss``
(and ``default_student_classes`` or ``load_data`` when their data differ). Teachers are arguments
of the step (``teacher_vars``), never part of the state.
"""
from __future__ import annotations

from typing import Sequence

import jax

from jka import models
from jka.data import Batches, load_split, select_classes
from jka.data.augment import normalise, random_crop_flip, to_unit
from jka.errors import ConfigError
from jka.train import mesh as mesh_lib
from jka.train.evaluate import classification_eval
from jka.train.state import TrainState, make_optimizer, make_schedule
from jka.train.teachers import Teacher, compute_dtype


def union_classes(teachers) -> list[int]:
    """The dataset classes of several teachers' outputs, concatenated in teacher order."""
    return [c for t in teachers for c in t.classes]


def student_part(tree):
    """The student's entry of a state that trains several modules under ``'student'`` (else all)."""
    return tree["student"] if isinstance(tree, dict) and "student" in tree else tree


class Algorithm:
    """Base class: a student classifier over ``student_classes``, trained with ``loss``."""

    name = "base"
    uses_labels = True
    mesh = None     # set by the training loop; batches made inside a step are split over it
    workdir = None  # set by the training loop; where an algorithm writes files of its own

    def __init__(self, cfg, teachers: Sequence[Teacher]):
        self.cfg = cfg
        self.teachers = list(teachers)
        self.load_data()
        self.dtype = compute_dtype(cfg)
        self.student_kwargs = dict(cfg.model.get("kwargs", {}))
        self.student = models.create(cfg.model.name, len(self.student_classes), dtype=self.dtype,
                                     **self.student_kwargs)
        self.total_steps = int(cfg.train.steps)

    def shard_batch(self, x):
        """Split a batch made inside the step over the devices (see ``mesh.constrain_batch``)."""
        return mesh_lib.constrain_batch(x, self.mesh)

    # -- data ---------------------------------------------------------------------------------------
    def default_student_classes(self, cfg, num_classes: int):
        classes = cfg.data.get("classes", None)
        return list(range(num_classes)) if classes is None else list(classes)

    def load_data(self):
        """Sets ``student_classes``, ``train_ds``, ``test_ds`` (labels in student order), ``mean``, ``std``."""
        full = load_split(self.cfg.data, "train")
        self.student_classes = list(self.default_student_classes(self.cfg, full.num_classes))
        self.train_ds = select_classes(full, self.student_classes)
        self.test_ds = load_split(self.cfg.data, "test", self.student_classes)
        self.mean, self.std = full.mean, full.std

    def train_batches(self, seed: int):
        """Step-indexed batches: ``host_batch(step)`` and ``device_batch(step, sharding)``."""
        return Batches(self.train_ds, int(self.cfg.data.batch_size), seed, with_labels=self.uses_labels)

    def prepare(self, rng, images, augment: bool = True):
        """Raw batch images → normalised compute-dtype inputs, with device-side augmentation (in
        pixel space: the crop pads black, as torchvision's ``RandomCrop`` before ``Normalize``)."""
        x = to_unit(images)
        aug = self.cfg.data.get("augment", {})
        if augment and (aug.get("crop_pad", 0) or aug.get("flip", False)):
            x = random_crop_flip(rng, x, int(aug.get("crop_pad", 0)), bool(aug.get("flip", False)))
        return normalise(x, self.mean, self.std, self.dtype)

    # -- state and step -----------------------------------------------------------------------------
    def init_student(self, rng, x, steps: int | None = None) -> TrainState:
        """The student's TrainState from sample inputs ``x``, optimizer ``cfg.optim`` scheduled over
        ``steps`` updates (default ``total_steps``)."""
        k_init, k_state = jax.random.split(rng)
        variables = self.student.init(k_init, x, train=False)
        tx = make_optimizer(self.cfg.optim, self.total_steps if steps is None else steps)
        return TrainState.create(variables["params"], tx, k_state, variables.get("batch_stats", {}))

    def learning_rate(self, step: int) -> float:
        """The student's learning rate after ``step`` steps (logged, and kept in metrics.jsonl); the
        data-free algorithms make ``kd_steps`` student updates per step."""
        per_step = getattr(self, "kd_steps", 1)
        return float(make_schedule(self.cfg.optim, self.total_steps * per_step)(step * per_step))

    def init(self, rng, batch):
        return self.init_student(rng, self.prepare(None, batch["image"][:1], augment=False))

    def start_from(self, state, variables, info):
        """``train.init_from``: the state with the student's variables taken from an exported model
        (a fresh optimizer state; same architecture and shapes required)."""
        if not isinstance(state, TrainState) or not isinstance(state.params, dict) or "student" in state.params:
            raise ConfigError(f"algorithm {self.name!r} trains more than one network and cannot start from "
                              "train.init_from; leave it unset")
        loaded = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
        mine = {"params": state.params, "batch_stats": state.batch_stats}
        shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)  # noqa: E731
        if jax.tree.structure(loaded) != jax.tree.structure(mine) or shapes(loaded) != shapes(mine):
            raise ConfigError(f"train.init_from holds a {info.get('arch')!r} model whose parameters do not match "
                              f"this run's {self.cfg.model.name!r} student; point it at a model of the same "
                              "architecture, width and classes")
        loaded = jax.tree.map(jax.numpy.asarray, loaded)
        return TrainState.create(loaded["params"], state.tx, state.rng, loaded["batch_stats"])

    def apply_student(self, params, batch_stats, x, train: bool):
        """(logits, features, new_batch_stats)."""
        if train:
            (logits, feats), upd = self.student.apply(
                {"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"])
            return logits, feats, upd["batch_stats"]
        logits, feats = self.student.apply({"params": params, "batch_stats": batch_stats}, x, train=False)
        return logits, feats, batch_stats

    def loss(self, params, batch_stats, teacher_vars, x, batch, rng):
        """Returns ``(loss, (new_batch_stats, metrics))``."""
        raise NotImplementedError

    def train_step(self, state, teacher_vars, batch):
        state, rng = state.next_rng()
        k_aug, k_loss = jax.random.split(rng)
        x = self.prepare(k_aug, batch["image"])
        grad_fn = jax.value_and_grad(self.loss, has_aux=True)
        (loss, (new_bs, metrics)), grads = grad_fn(state.params, state.batch_stats, teacher_vars, x, batch, k_loss)
        state = state.apply_gradients(grads, batch_stats=new_bs)
        return state, {"loss": loss, **metrics}

    # -- evaluation and export ----------------------------------------------------------------------
    def predict(self, state, images):
        x = self.prepare(None, images, augment=False)
        logits, _, _ = self.apply_student(student_part(state.params), student_part(state.batch_stats), x, train=False)
        return logits

    def eval_groups(self) -> dict:
        """Student output indices of each teacher's classes (accuracy is reported per group)."""
        pos = {c: i for i, c in enumerate(self.student_classes)}
        return {f"teacher{k}_classes": [pos[c] for c in t.classes if c in pos]
                for k, t in enumerate(self.teachers)}

    def evaluate(self, state, mesh) -> dict:
        """Student accuracy on the test split, overall and per teacher's classes."""
        return classification_eval(self.predict, state, self.test_ds, int(self.cfg.data.batch_size), mesh,
                                   self.eval_groups())

    def input_info(self) -> dict:
        """The ``model.json`` fields that say what input the exported model expects."""
        return {"mean": list(self.mean), "std": list(self.std), "image_shape": list(self.train_ds.image_shape)}

    def export_student(self, variables, arch=None, kwargs=None, **extra):
        """(arch, num_classes, variables, model.json fields) of a student classifier."""
        return (arch or self.cfg.model.name, len(self.student_classes), variables,
                {"classes": self.student_classes, "kwargs": self.student_kwargs if kwargs is None else kwargs,
                 **self.input_info(), **extra})

    def export(self, state):
        """(arch, num_classes, variables, extra model.json fields) of the trained student."""
        return self.export_student({"params": student_part(state.params),
                                    "batch_stats": student_part(state.batch_stats)})
