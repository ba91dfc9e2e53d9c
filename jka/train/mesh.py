"""Device mesh and shardings: batches split over the ``data`` axis, state replicated.

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
