"""Base of every data-free algorithm: no real image ever reaches the training step.

``train_batches`` yields empty batches, so the compiled step only sees what it synthesizes; the
real test split is used only to evaluate the student afterwards. The student predicts the (single)
teacher's classes, or the union of the teachers' classes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jka.algorithms.base import Algorithm
from jka.data.core import NoData
from jka.errors import ConfigError
from jka.train.state import TrainState, make_optimizer


class DataFreeAlgorithm(Algorithm):
    name = "base"
    uses_labels = False

    def __init__(self, cfg, teachers):
        if not teachers:
            raise ConfigError(f"data-free algorithm {cfg.algorithm!r} needs at least one entry in teachers")
        super().__init__(cfg, teachers)

    def default_student_classes(self, cfg, num_classes):
        return [c for t in self.teachers for c in t.classes]

    @property
    def image_shape(self) -> tuple:
        """(H, W, C) of the images to synthesize: the shape the teachers were trained on."""
        return tuple(self.train_ds.image_shape)

    def train_batches(self, seed: int):
        return NoData()

    def init_student(self, rng) -> TrainState:
        k_init, k_state = jax.random.split(rng)
        x = jnp.zeros((1,) + self.image_shape, self.dtype)
        variables = self.student.init(k_init, x, train=False)
        tx = make_optimizer(self.cfg.optim, self.total_steps)
        return TrainState.create(variables["params"], tx, k_state, variables.get("batch_stats", {}))

    def init(self, rng, batch):
        return self.init_student(rng)
