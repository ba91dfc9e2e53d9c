"""Tiny frozen teachers and configs for the inversion tests (no files, no training)."""
import jax
import jax.numpy as jnp
import pytest

from jka import models
from jka.train.teachers import Teacher


def make_teacher(classes, width=0.25, seed=0):
    m = models.create("small_cnn", len(classes), width=width)
    v = m.init(jax.random.PRNGKey(seed), jnp.zeros((1, 8, 8, 1)))
    v = {"params": v["params"], "batch_stats": v["batch_stats"]}
    return Teacher("small_cnn", m, v, list(classes), {"width": width})


@pytest.fixture
def tiny_teacher():
    return make_teacher(range(10))
