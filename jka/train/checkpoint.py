"""Checkpoints of training state (orbax, resumable) in ``WORKDIR/checkpoints``.

A training checkpoint holds the whole algorithm state and is only meant for resuming; what other
runs consume is the exported model (:mod:`jka.train.export`).
"""
from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp
from flax import serialization

from jka.errors import UserError


class Checkpointer:
    """Periodic + final checkpoints of the algorithm state in ``WORKDIR/checkpoints``, keep ``keep``."""

    def __init__(self, workdir: str, keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 enable_async_checkpointing=async_save),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        self.manager.save(step, args=ocp.args.StandardSave(serialization.to_state_dict(state)))

    def restore(self, state_like, step: int | None = None):
        step = self.latest_step() if step is None else step
        target = serialization.to_state_dict(state_like)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        try:
            restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except (ValueError, KeyError) as err:
            raise UserError(
                f"checkpoint at step {step} in {self.directory} does not match this config's state "
                f"({err}); use a fresh --workdir or the config that wrote it") from None
        return serialization.from_state_dict(state_like, restored), step

    def wait(self):
        self.manager.wait_until_finished()

    def close(self):
        self.manager.wait_until_finished()
        self.manager.close()
