"""Stopping cleanly on SIGTERM (SLURM, Kubernetes, TPU preemption) and SIGINT (Ctrl-C).

Inside :func:`watch` a signal only sets a flag; the training loop polls :func:`requested` at every
step boundary, saves a checkpoint there and raises :class:`Preempted` (the CLI exits with code
:data:`EXIT_CODE`); the rerun resumes from that checkpoint. A second Ctrl-C stops at once.

In a multi-process run, JAX's preemption service owns SIGTERM: the notice of any process is
shared, and orbax's ``reached_preemption(step)`` turns true on every process at the same step, so
all save together (a process that stopped alone would leave the others waiting in a collective).
There Ctrl-C is forwarded to that service as a SIGTERM.
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
    """Turn SIGTERM/SIGINT into a stop request while the block runs (re-entrant; only the main
    thread can install signal handlers, elsewhere this does nothing)."""
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
    """Whether to save and stop after ``step``: a signal arrived (one process), or every process
    reached the preemption sync point (several). Call it at every step on every process."""
    if _multiprocess():
        return ckpt.reached_preemption(step)
    return bool(_received)


def signal_name() -> str:
    return signal.Signals(_received[0]).name if _received else "SIGTERM"
