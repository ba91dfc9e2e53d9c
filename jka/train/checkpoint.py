"""Orbax checkpoints in ``WORKDIR/checkpoints``, only for resuming: the whole state (item ``state``)
and the loop's open logging interval (item ``progress``, JSON). Other runs read the exported model.

Restoring takes the newest checkpoint that reads back: a damaged one is moved to
``WORKDIR/checkpoints.damaged/STEP`` with a warning and the next older one is used; a checkpoint of
another state is refused with the first key whose shape differs.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys

import jax
import orbax.checkpoint as ocp
from flax import serialization

from jka import paths
from jka.errors import UserError
from jka.train.distributed import barrier
from jka.train.export import first_difference, leaf_shapes

log = logging.getLogger("jka")


def _ignore_closed_loop_callbacks() -> None:
    """Drop (only) the "Event loop is closed" reports of TensorStore's reads that finish, after a
    failed one, into the event loop orbax has already closed."""
    previous = sys.unraisablehook
    if getattr(previous, "jka_filter", False):
        return

    def hook(unraisable):
        exc = unraisable.exc_value
        if not (isinstance(exc, RuntimeError) and "Event loop is closed" in str(exc)):
            previous(unraisable)

    hook.jka_filter = True
    sys.unraisablehook = hook


@contextlib.contextmanager
def _quiet_asyncio():
    """Silence ``asyncio``'s log of every pending future of TensorStore's failed reads."""
    logger = logging.getLogger("asyncio")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        gc.collect()  # the failed reads' futures report themselves when collected: here, quietly
        logger.setLevel(level)


class Checkpointer:
    """Periodic, preemption and final checkpoints in ``WORKDIR/checkpoints``; keeps the ``keep`` newest."""

    def __init__(self, workdir: str, keep: int = 3):
        self.directory = paths.absolute(os.path.join(workdir, "checkpoints"))
        self.damaged_dir = self.directory + ".damaged"
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=True),
            item_handlers={"state": ocp.StandardCheckpointHandler(), "progress": ocp.JsonCheckpointHandler()},
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, progress: dict | None = None) -> None:
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(serialization.to_state_dict(state)),
            progress=ocp.args.JsonSave(progress or {})))

    def _read(self, step: int, target: dict, abstract):
        """(state dict, progress) of ``step``; UserError if it is another state, others if damaged."""
        with _quiet_asyncio():
            saved = self.manager.item_metadata(step)["state"]
            if saved is None:
                raise ValueError("no readable state metadata")
            diff = first_difference(leaf_shapes(saved.tree if hasattr(saved, "tree") else saved),
                                    leaf_shapes(target), "this config's state needs", "this config's state")
            if diff is not None:
                raise UserError(f"the checkpoint at step {step} in {self.directory} is of another state: {diff}; "
                                "rerun with the config that wrote it, or train this config in another --workdir")
            out = self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore()))
        return out["state"], dict(out["progress"] or {})

    def restore(self, state_like):
        """(state, step, progress) of the newest readable checkpoint (every process calls it)."""
        target = serialization.to_state_dict(state_like)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        _ignore_closed_loop_callbacks()
        damaged, found = [], None
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                found = (step, *self._read(step, target, abstract))
                break
            except UserError:
                raise
            except Exception as err:  # noqa: BLE001 - whatever TensorStore/JSON raised: the files are damaged
                damaged.append(step)
                log.warning("checkpoint at step %d in %s is damaged (%s: %s); trying an older one",
                            step, self.directory, type(err).__name__, str(err).splitlines()[0][:200])
        if damaged:
            self._move_aside(damaged)
        if found is None:
            raise UserError(f"no checkpoint in {self.directory} reads back (damaged: steps "
                            f"{', '.join(map(str, damaged))}, moved to {self.damaged_dir}); rerun to start "
                            "from step 0, or restore the checkpoints from a backup")
        step, restored, progress = found
        if damaged:
            log.warning("resuming from step %d; the damaged checkpoints are in %s", step, self.damaged_dir)
        return serialization.from_state_dict(state_like, restored), step, progress

    def _move_aside(self, steps) -> None:
        if jax.process_index() == 0:
            paths.makedirs(self.damaged_dir)
            for step in steps:
                paths.move_dir(os.path.join(self.directory, str(step)), os.path.join(self.damaged_dir, str(step)))
        barrier("jka: damaged checkpoints moved")
        self.manager.reload()

    def close(self):
        self.manager.wait_until_finished()
        self.manager.close()
