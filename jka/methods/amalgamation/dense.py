"""What the dense-task methods (``dense_supervised``, task branching) share: the data (images with a
segmentation and a depth map, ``load_dense_split``), the one augmentation (``data.augment.flip``: the image
and its maps flipped together, in the step), and metric sums accumulated over the whole test split.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jka.data.augment import to_float
from jka.data.core import process_slice, to_global
from jka.data.scenes import DenseBatches, dense_eval_batches, load_dense_split
from jka.errors import ConfigError
from jka.losses import dense
from jka.methods import common
from jka.train import mesh as mesh_lib
from jka.train.evaluate import compiled
from jka.train.program import Program, Split
from jka.train.state import State, make_optimizer
from jka.train.update import minimize

ALIASES = {"seg": "segmentation", "segmentation": "segmentation", "depth": "depth"}


def task_kind(kind) -> str:
    """``seg``/``segmentation``/``depth`` → the canonical kind, or a ConfigError."""
    if kind not in ALIASES:
        raise ConfigError(f"unknown dense task kind {kind!r}; valid choices: depth, segmentation (or seg)")
    return ALIASES[kind]


def flip_rows(rng, *arrays):
    """The same random half of the samples of every (B, H, W, ...) array flipped horizontally."""
    b = arrays[0].shape[0]
    flip = jax.random.bernoulli(rng, 0.5, (b,))
    return [jnp.where(flip.reshape((b,) + (1,) * (a.ndim - 1)), a[:, :, ::-1], a) for a in arrays]


def task_sums(kind: str, out, batch, num_classes: int):
    """Metric sums of one task's output on a batch (padded samples masked by ``batch['mask']``)."""
    if kind == "segmentation":
        return dense.confusion_matrix(out, batch["seg"], num_classes, batch["mask"])
    return dense.depth_sums(out, batch["depth"], batch["mask"])


def task_scores(kind: str, sums) -> dict:
    return dense.segmentation_scores(sums) if kind == "segmentation" else dense.depth_scores(sums)


def metric_sums(sums_fn, state, ds, batch_size: int, mesh):
    """Σ over the test split of ``sums_fn(state, batch)`` (any pytree of sums), on the host."""
    sharding = mesh_lib.data_sharding(mesh)
    n_dev = mesh_lib.batch_devices(mesh)
    bs = max(n_dev, (min(batch_size, len(ds)) // n_dev) * n_dev)
    fn = compiled(sums_fn, mesh)
    total = None
    for batch in dense_eval_batches(ds, bs):
        local = {k: process_slice(v) for k, v in batch.items()}  # this process's rows only
        sums = jax.device_get(fn(state, to_global(local, sharding)))
        sums = jax.tree.map(lambda a: np.asarray(a, np.float64), sums)
        total = sums if total is None else jax.tree.map(np.add, total, sums)
    return total


class ImageBatches(DenseBatches):
    """Dense batches with the images only: what a student that learns from teachers receives."""

    def host_batch(self, step: int) -> dict:
        return {"image": super().host_batch(step)["image"]}


def split(cfg, classes: Callable[[int], list]) -> Split:
    """The run's dense data; the student's outputs: ``classes(the data's segmentation classes)``."""
    train, test = load_dense_split(cfg.data, "train"), load_dense_split(cfg.data, "test")
    if train.images.shape[1:] != test.images.shape[1:]:
        raise ConfigError("the dense train and test images differ in size; prepare both splits at one size")
    return Split(train, test, train.mean, train.std, list(classes(int(train.num_classes))))


def preparer(data: Split, dtype) -> Callable:
    """Raw images → normalised inputs (no augmentation here: maps flip with the image in the step)."""
    return lambda images: to_float(images, data.mean, data.std).astype(dtype)


def with_bias(params: dict, path: tuple, value) -> dict:
    """``params`` with the bias of the layer at ``path`` (keys) filled with ``value``."""
    if len(path) == 0:
        return {**params, "bias": jnp.full_like(params["bias"], value)}
    return {**params, path[0]: with_bias(params[path[0]], path[1:], value)}


def program(ctx, name: str, data: Split, net: common.Net, variables: Callable, loss: Callable, evaluate: Callable,
            export: Callable, uses_labels: bool) -> Program:
    """The program of a dense student (part ``'student'``, initialised by ``variables(rng, batch)``) and
    ``loss(params, batch_stats, teacher_vars, x, maps, rng) -> (loss, (new batch stats, metrics))``,
    ``maps`` the batch's ``seg``/``depth`` (if any), flipped with the image when ``data.augment.flip``."""
    cfg = ctx.cfg
    prepare = preparer(data, ctx.dtype)
    flips = bool(cfg.data.get("augment", {}).get("flip", False))

    def init(rng, batch):
        k_init, k_state = jax.random.split(rng)
        tx = make_optimizer(cfg.optim, ctx.steps)
        return State.create(k_state, {"student": variables(k_init, batch)}, {"student": (("student",), tx)})

    def step(state, teacher_vars, batch):
        state, rng = state.next_rng()
        k_flip, k_loss = jax.random.split(rng)
        x = prepare(batch["image"])
        maps = {k: v for k, v in batch.items() if k != "image"}
        if flips:
            x, *flipped = flip_rows(k_flip, x, *maps.values())
            maps = dict(zip(maps, flipped))
        batch_stats = state.batch_stats
        state, value, metrics = minimize(state, "student",
                                         lambda p: loss(p, batch_stats, teacher_vars, x, maps, k_loss))
        return state.advance(), {"loss": value, **metrics}

    batches = (DenseBatches if uses_labels else ImageBatches)(data.train, int(cfg.data.batch_size), int(cfg.seed))
    return Program(name=name, data=data, teachers=ctx.teachers, batches=batches, steps=ctx.steps, init=init, step=step,
                   evaluate=evaluate, export=export, learning_rate=common.learning_rate(cfg.optim, ctx.steps),
                   uses_labels=uses_labels, start_from=common.start_from_student(name),
                   details={"model": net.arch, "model_kwargs": net.kwargs})
