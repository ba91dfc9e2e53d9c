"""What every data-free method shares: empty loop batches (the step synthesizes its own), the real test
split for evaluation only, a student over the union of the teachers' classes in teacher order.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jka.data.augment import to_float
from jka.data.core import NoData
from jka.methods import common
from jka.train.program import Split
from jka.train.state import make_optimizer


def teachers_split(ctx, classes=None) -> Split:
    """The data of a data-free run over ``classes`` (default: the union of the teachers')."""
    return common.split(ctx.cfg, common.union_classes(ctx.teachers) if classes is None else classes)


NO_DATA = NoData()


def normaliser(data: Split, dtype):
    """Synthesized images in [0, 1] → the normalised inputs the teachers and the student see."""
    return lambda x01: to_float(x01, data.mean, data.std, dtype)


def to_pixels(data: Split, x):
    """Normalised images → [0, 1] pixels (the inverse of :func:`normaliser`, clipped)."""
    mean, std = jnp.asarray(data.mean, jnp.float32), jnp.asarray(data.std, jnp.float32)
    return jnp.clip(x.astype(jnp.float32) * std + mean, 0.0, 1.0)


def student_init(net: common.Net, rng, data: Split, ctx, updates_per_step: int):
    """(the student's variables, its group scheduled over every student update); the key split as a classifier's."""
    k_init, _ = jax.random.split(rng)
    tx = make_optimizer(ctx.cfg.optim, ctx.steps * updates_per_step)
    return net.init(k_init, jnp.zeros((1,) + data.image_shape, ctx.dtype)), (("student",), tx)
