"""Multi-process start-up: one process per host (TPU, multi-node GPU) or per GPU.

Set either
- ``JKA_COORDINATOR_ADDRESS=host:port``, ``JKA_NUM_PROCESSES=N``, ``JKA_PROCESS_ID=i`` (any
  cluster; the launchers in ``launch/`` export them), or
- ``JKA_DISTRIBUTED=auto`` to let JAX detect SLURM, Open MPI or a Cloud TPU pod slice.
Nothing is done when neither is set (one process, all local devices).
"""
from __future__ import annotations

import os

from jka.errors import ConfigError


def maybe_initialize() -> bool:
    import jax

    addr = os.environ.get("JKA_COORDINATOR_ADDRESS")
    if addr:
        try:
            n, pid = int(os.environ["JKA_NUM_PROCESSES"]), int(os.environ["JKA_PROCESS_ID"])
        except (KeyError, ValueError):
            raise ConfigError("JKA_COORDINATOR_ADDRESS is set: also set JKA_NUM_PROCESSES and JKA_PROCESS_ID "
                              "(integers)") from None
        local = os.environ.get("JKA_LOCAL_DEVICE_IDS")
        ids = [int(i) for i in local.split(",")] if local else None
        jax.distributed.initialize(addr, n, pid, local_device_ids=ids)
        return True
    if os.environ.get("JKA_DISTRIBUTED", "").lower() == "auto":
        jax.distributed.initialize()
        return True
    return False


def barrier(name: str) -> None:
    """Wait until every process reaches ``name`` (after process 0 wrote files the others read next)."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
