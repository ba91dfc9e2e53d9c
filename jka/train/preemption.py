"""Stopping cleanly on SIGTERM (SLURM, Kubernetes, TPU preemption) and SIGINT (Ctrl-C): inside
:func:`watch` a signal only sets a flag; the loop polls :func:`requested` at every step boundary,
saves a checkpoint there and raises :class:`Preempted` (exit code :data:`EXIT_CODE`), and the rerun
resumes. A second Ctrl-C stops at once.

In a multi-process run JAX's preemption service owns SIGTERM and every process stops at the same step
(one that stopped alone would leave the others waiting in a collective); Ctrl-C is forwarded to it.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading

import jax

EXIT_CODE = 75  # EX_TEMPFAIL: a temporary failure, run the same command again


class Preempted(Exception):
    """The run stopped on a signal after saving a checkpoint; rerunning it resumes."""


_received: list[int] = []
_depth = 0


def _multiprocess() -> bool:
    from jax._src import distributed  # the preemption sync manager lives here (no public handle)

    return jax.process_count() > 1 and getattr(distributed.global_state, "preemption_sync_manager", None) is not None


def _on_signal(signum, frame):
    if signum == signal.SIGINT and _received:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt  # the second Ctrl-C: stop now
    _received.append(signum)
    if signum == signal.SIGINT and _multiprocess():
        os.kill(os.getpid(), signal.SIGTERM)  # to JAX's preemption notifier, which tells every process


@contextlib.contextmanager
def watch():
    """SIGTERM/SIGINT are stop requests while the block runs (re-entrant; a no-op off the main thread,
    which alone can install signal handlers)."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    if _depth == 0:
        _received.clear()
        for sig in (signal.SIGINT,) if _multiprocess() else (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_signal)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def requested(step: int, ckpt) -> bool:
    """Whether to save and stop after ``step`` (call it at every step on every process)."""
    if _multiprocess():
        return ckpt.manager.reached_preemption(step)  # every process at once, after any one's SIGTERM
    return bool(_received)


def signal_name() -> str:
    return signal.Signals(_received[0]).name if _received else "SIGTERM"
