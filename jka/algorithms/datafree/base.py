"""Base of every data-free algorithm: no real image ever reaches the training step.

``train_batches`` yields empty batches, so the compiled step only sees what it synthesizes; the
real test split is used only to evaluate the student afterwards. The student predicts the (single)
teacher's classes, or the union of the teachers' classes.
"""
from __future__ import annotations

import jax.numpy as jnp

from jka.algorithms.base import Algorithm, union_classes
from jka.data.augment import to_float
from jka.data.core import NoData
from jka.errors import ConfigError


class DataFreeAlgorithm(Algorithm):
    name = "base"
    uses_labels = False

    def __init__(self, cfg, teachers):
        if not teachers:
            raise ConfigError(f"data-free algorithm {cfg.algorithm!r} needs at least one entry in teachers")
        super().__init__(cfg, teachers)

    def default_student_classes(self, cfg, num_classes):
        return union_classes(self.teachers)

    @property
    def image_shape(self) -> tuple:
        """(H, W, C) of the images to synthesize: the shape the teachers were trained on."""
        return tuple(self.train_ds.image_shape)

    def train_batches(self, seed: int):
        return NoData()

    def init_student(self, rng, x=None, steps=None):
        """The student's TrainState, initialised on zeros of the synthesized images' shape."""
        return super().init_student(rng, jnp.zeros((1,) + self.image_shape, self.dtype) if x is None else x, steps)

    def init(self, rng, batch):
        return self.init_student(rng)

    def normalise(self, x01):
        """Synthesized images in [0, 1] → the normalised inputs the teachers and the student see."""
        return to_float(x01, self.mean, self.std, self.dtype)

    def to_pixels(self, x):
        """Normalised images → [0, 1] pixels (the inverse of :meth:`normalise`, clipped)."""
        mean, std = jnp.asarray(self.mean, jnp.float32), jnp.asarray(self.std, jnp.float32)
        return jnp.clip(x.astype(jnp.float32) * std + mean, 0.0, 1.0)

    def predict(self, state, images):
        """The student's logits on raw test images (a state whose student is ``state.student``)."""
        x = self.prepare(None, images, augment=False)
        return self.apply_student(state.student.params, state.student.batch_stats, x, train=False)[0]

    def export(self, state):
        return self.export_student(state.student.variables)
