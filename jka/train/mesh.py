"""Device mesh and shardings: batches split over every device (the ``data`` and ``model`` axes);
parameters replicated, or split over ``model`` (FSDP-style) when a teacher or the state is too large
for one device. Splitting the batch over ``model`` too is what makes it FSDP rather than a replicated
computation: each device works on its own rows, and XLA gathers a split parameter where a layer needs
it whole. The same code runs on one CPU, on fake CPU devices, on a GPU or on a TPU slice.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jka.errors import ConfigError


def make_mesh(data: int = -1, model: int = 1, devices=None) -> Mesh:
    """A 2-D mesh ``(data, model)``; ``data=-1`` takes every device ``model`` leaves, a smaller
    ``data × model`` uses the first devices only.

    Devices stay in ``jax.devices()`` order (process by process), not a TPU-topology order: each
    process feeds its own contiguous rows of a batch, so its devices must hold consecutive blocks
    of it. With ``model=1`` nothing is lost on a TPU slice: gradients are reduced over every device
    at once, in an order XLA chooses. With ``model>1`` a model group lies within one host, whose
    chips are neighbours, but the reductions across groups follow this order; a topology-aware
    order might speed those up on a large slice (not measured: no TPU was available).
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
    if jax.process_count() > 1 and model > jax.local_device_count():
        # each process feeds its own rows of the batch to its own devices
        raise ConfigError(
            f"train.mesh.model={model} is larger than the {jax.local_device_count()} devices of one process; "
            f"in a multi-process run a model group must sit inside one process: use "
            f"train.mesh.model <= {jax.local_device_count()}")
    return Mesh(np.asarray(devices[: data * model]).reshape(data, model), ("data", "model"))


BATCH_AXES = ("data", "model")


def batch_devices(mesh: Mesh) -> int:
    return mesh.shape["data"] * mesh.shape["model"]


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over ``data`` × ``model``."""
    return NamedSharding(mesh, P(BATCH_AXES))


def constrain_batch(x, mesh: Mesh | None):
    """Inside a compiled step: ask XLA to split ``x``'s leading axis like a batch (a batch made in the
    step, which would otherwise be computed whole on every device). Identity without a mesh, on one
    device, or when the rows do not divide evenly."""
    n = 1 if mesh is None else batch_devices(mesh)
    if n == 1 or x.shape[0] % n:
        return x
    return jax.lax.with_sharding_constraint(x, data_sharding(mesh))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch(batch_size: int, mesh: Mesh):
    n = batch_devices(mesh)
    if batch_size % n:
        raise ConfigError(
            f"batch size {batch_size} is not divisible by the {n} devices it is split over "
            f"(mesh data={mesh.shape['data']} × model={mesh.shape['model']}); use a multiple of {n} (data.batch_size)")
    if batch_size % jax.process_count():
        raise ConfigError(f"batch size {batch_size} is not divisible by the {jax.process_count()} processes")


def fsdp_sharding(tree, mesh: Mesh, min_size: int = 1 << 14):
    """Per-leaf shardings that split every array of ``min_size`` elements or more over ``model``, along
    its largest dimension that ``model`` divides; the others, and all on a mesh with ``model == 1``,
    stay replicated. Each device holds ``1/model`` of the large arrays; the results do not change."""
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
    return fsdp_sharding(tree, mesh, min_size) if shard else jax.tree.map(lambda _: replicated(mesh), tree)
