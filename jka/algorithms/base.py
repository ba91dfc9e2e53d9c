"""What every algorithm shares: a student classifier, frozen teachers, input preparation.

An algorithm exposes ``init(rng, batch) -> state`` and a pure
``train_step(state, teacher_vars, batch) -> (state, metrics)`` that the loop compiles once. The
student's predictions come from ``predict(state, images)``; ``export(state)`` gives what is saved
as the run's model.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jka import models
from jka.data import Batches, load_split, select_classes
from jka.data.augment import random_crop_flip, to_float
from jka.train import mesh as mesh_lib
from jka.train.evaluate import classification_eval
from jka.train.state import TrainState, make_optimizer

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass
class Teacher:
    """A frozen network: its module, its variables, and the dataset classes of its outputs."""

    arch: str
    module: Any
    variables: dict
    classes: list[int]
    kwargs: dict = dataclasses.field(default_factory=dict)

    def __call__(self, variables, x):
        """Teachers always run in inference mode and never receive gradients."""
        logits, feats = self.module.apply(jax.lax.stop_gradient(variables), x, train=False)
        return jax.lax.stop_gradient(logits), jax.tree.map(jax.lax.stop_gradient, feats)


def compute_dtype(cfg):
    return DTYPES[cfg.train.get("dtype", "float32")]


class Algorithm:
    """Base class: a student classifier over ``student_classes``, trained with ``loss``."""

    name = "base"
    uses_labels = True
    mesh = None  # set by the training loop; batches made inside a step are split over it

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

    # -- pieces subclasses override -------------------------------------------------------------
    def default_student_classes(self, cfg, num_classes: int):
        classes = cfg.data.get("classes", None)
        return list(range(num_classes)) if classes is None else list(classes)

    def load_data(self):
        """Sets ``student_classes``, ``train_ds``, ``test_ds`` (labels in student order), ``mean``, ``std``.

        Algorithms with other data (dense tasks, no data at all) override this, ``train_batches``
        and ``evaluate``.
        """
        full = load_split(self.cfg.data, "train")
        self.student_classes = list(self.default_student_classes(self.cfg, full.num_classes))
        self.train_ds = select_classes(full, self.student_classes)
        self.test_ds = load_split(self.cfg.data, "test", self.student_classes)
        self.mean, self.std = full.mean, full.std

    def train_batches(self, seed: int):
        """Step-indexed batches: ``host_batch(step)`` and ``device_batch(step, sharding)``."""
        return Batches(self.train_ds, int(self.cfg.data.batch_size), seed, with_labels=self.uses_labels)

    def eval_groups(self) -> dict:
        """Student output indices of each teacher's classes (accuracy is reported per group)."""
        pos = {c: i for i, c in enumerate(self.student_classes)}
        return {f"teacher{k}_classes": [pos[c] for c in t.classes if c in pos]
                for k, t in enumerate(self.teachers)}

    def evaluate(self, state, mesh) -> dict:
        """Student accuracy on the test split, overall and per teacher's classes."""
        return classification_eval(self.predict, state, self.test_ds, int(self.cfg.data.batch_size), mesh,
                                   self.eval_groups())

    def export_info(self) -> dict:
        """Extra ``model.json`` fields of the exported student."""
        return {"mean": list(self.mean), "std": list(self.std), "image_shape": list(self.train_ds.image_shape)}

    def loss(self, params, batch_stats, teacher_vars, x, batch, rng):
        """Returns ``(loss, (new_batch_stats, metrics))``."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------------------
    def prepare(self, rng, images, augment: bool = True):
        """Raw batch images → normalised compute-dtype inputs, with device-side augmentation."""
        x = to_float(images, self.mean, self.std)
        aug = self.cfg.data.get("augment", {})
        if augment and (aug.get("crop_pad", 0) or aug.get("flip", False)):
            x = random_crop_flip(rng, x, int(aug.get("crop_pad", 0)), bool(aug.get("flip", False)))
        return x.astype(self.dtype)

    def init(self, rng, batch):
        k_init, k_state = jax.random.split(rng)
        x = self.prepare(k_init, batch["image"][:1], augment=False)
        variables = self.student.init(k_init, x, train=False)
        tx = make_optimizer(self.cfg.optim, self.total_steps)
        return TrainState.create(variables["params"], tx, k_state, variables.get("batch_stats", {}))

    def apply_student(self, params, batch_stats, x, train: bool):
        """(logits, features, new_batch_stats)."""
        if train:
            (logits, feats), upd = self.student.apply(
                {"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"])
            return logits, feats, upd["batch_stats"]
        logits, feats = self.student.apply({"params": params, "batch_stats": batch_stats}, x, train=False)
        return logits, feats, batch_stats

    def train_step(self, state, teacher_vars, batch):
        state, rng = state.next_rng()
        k_aug, k_loss = jax.random.split(rng)
        x = self.prepare(k_aug, batch["image"])
        grad_fn = jax.value_and_grad(self.loss, has_aux=True)
        (loss, (new_bs, metrics)), grads = grad_fn(state.params, state.batch_stats, teacher_vars, x, batch, k_loss)
        state = state.apply_gradients(grads, batch_stats=new_bs)
        return state, {"loss": loss, **metrics}

    @staticmethod
    def student_variables(state) -> tuple:
        """(params, batch_stats) of the student; a state training several modules keeps the
        student's under the key ``'student'``."""
        params, batch_stats = state.params, state.batch_stats
        if isinstance(params, dict) and "student" in params:
            return params["student"], batch_stats["student"]
        return params, batch_stats

    def predict(self, state, images):
        x = self.prepare(None, images, augment=False)
        logits, _, _ = self.apply_student(*self.student_variables(state), x, train=False)
        return logits

    def export(self, state):
        """(arch, num_classes, variables, extra model.json fields) of the trained student."""
        params, batch_stats = self.student_variables(state)
        return (self.cfg.model.name, len(self.student_classes), {"params": params, "batch_stats": batch_stats},
                {"classes": self.student_classes, "kwargs": self.student_kwargs})
