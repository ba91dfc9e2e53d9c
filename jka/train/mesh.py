"""Device mesh and shardings: batches split over the ``data`` axis; parameters replicated, or split
over the ``model`` axis (FSDP-style) when a teacher or the training state is too large for one device.

The same code runs on one CPU, on 8 fake CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``), on a GPU, or on a TPU slice.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jka.errors import ConfigError


def make_mesh(data: int = -1, model: int = 1, devices=None) -> Mesh:
    """A 2-D mesh ``(data, model)``.

    ``data=-1`` takes every device not used by ``model``; a smaller ``data × model`` uses the first
    devices only (e.g. ``train.mesh.data=1`` runs on one device of many).
    """
    devices = list(devices if devices is not None else jax.devices())
    n = len(devices)
    if model < 1 or n % model:
        raise ConfigError(f"mesh.model={model} must divide the {n} devices")
    if data == -1:
        data = n // model
    if data < 1 or data * model > n:
        raise ConfigError(f"mesh data={data} × model={model} needs {data * model} devices; {n} are available")
    if data * model < n and jax.process_count() > 1:
        raise ConfigError("in a multi-process run the mesh must use every device (train.mesh.data=-1)")
    return Mesh(np.asarray(devices[: data * model]).reshape(data, model), ("data", "model"))


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over ``data``."""
    return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch(batch_size: int, mesh: Mesh):
    n = mesh.shape["data"]
    if batch_size % n:
        raise ConfigError(
            f"batch size {batch_size} is not divisible by the {n} data-parallel devices; "
            f"use a multiple of {n} (data.batch_size)")
    if batch_size % jax.process_count():
        raise ConfigError(f"batch size {batch_size} is not divisible by the {jax.process_count()} processes")


def replicated_like(tree, mesh: Mesh):
    """A replicated sharding for every leaf of ``tree``."""
    return jax.tree.map(lambda _: replicated(mesh), tree)


def fsdp_sharding(tree, mesh: Mesh, min_size: int = 1 << 14):
    """Per-leaf shardings that split every array of ``min_size`` elements or more over ``model``.

    The split dimension is the array's largest one that the ``model`` axis size divides (a conv
    kernel's output channels, a dense layer's larger side); arrays with no such dimension, smaller
    arrays (biases, BatchNorm vectors) and everything on a mesh with ``model == 1`` stay replicated.
    XLA gathers a split array where a computation needs it whole, so the step's results are the same
    as with replicated parameters while each device holds only ``1/model`` of the large arrays.
    """
    m = mesh.shape["model"]

    def rule(x):
        shape = tuple(getattr(x, "shape", ()))
        if m == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
            return replicated(mesh)
        for d in sorted(range(len(shape)), key=lambda d: (-shape[d], -d)):
            if shape[d] % m == 0:
                spec = [None] * len(shape)
                spec[d] = "model"
                return NamedSharding(mesh, P(*spec))
        return replicated(mesh)

    return jax.tree.map(rule, tree)


def param_shardings(tree, mesh: Mesh, shard: bool, min_size: int):
    """``fsdp_sharding`` when ``shard`` is on, otherwise replicated leaves."""
    return fsdp_sharding(tree, mesh, min_size) if shard else replicated_like(tree, mesh)
