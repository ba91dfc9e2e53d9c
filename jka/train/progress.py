"""What a training run shows while it runs. Every ``train.log_every`` steps process 0 logs one line
(logger ``jka``) and sends the same row to the metric writers: the step, each metric's mean over the
interval, the learning rate, steps/s and img/s without the first step (its compilation is logged on
its own), TFLOP/s (the step's FLOPs × steps/s) and, where the device's peak is known, the MFU, and the
time left; on a terminal a tqdm bar runs too.

The interval's sums live on the device and are added to inside the compiled step (no second program
per step, no host sync); they are saved with each checkpoint, so a resumed run logs exactly the means
an uninterrupted one would.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jka.train import mesh as mesh_lib
from jka.train.metrics import to_python

log = logging.getLogger("jka")


def add(sums, metrics):
    return jax.tree.map(lambda s, m: s + jnp.asarray(m, jnp.float32), sums, metrics)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(round(seconds))))


class Progress:
    """The interval means, rates and log lines of one run from ``start`` to ``total``. ``metrics``: the
    shapes of a step's metrics; :attr:`sums`: what the next step adds to; :attr:`flops`: one step's
    FLOPs and :attr:`peak`: all the devices' peak FLOP/s (None: unknown)."""

    def __init__(self, name: str, learning_rate, cfg, start: int, total: int, writer, mesh, metrics,
                 saved: dict | None = None):
        self.name, self.learning_rate, self.total, self.writer = name, learning_rate, total, writer
        self.batch_size = int(cfg.data.batch_size)
        self.log_every = int(cfg.train.log_every)
        replicated = mesh_lib.replicated(mesh)
        self.zeros = lambda: jax.device_put(jax.tree.map(lambda m: np.zeros(m.shape, np.float32), metrics), replicated)
        self.sums, self.count = self.zeros(), 0
        if saved and saved.get("count"):
            self.sums = jax.device_put(jax.tree.map(lambda a: np.asarray(a, np.float32), saved["sums"]), replicated)
            self.count = int(saved["count"])
        self.began = time.perf_counter()
        self.mark = None  # (time, step) once the first step (and its compilation) is done
        self.paused = 0.0
        self.flops = self.peak = None  # set by the loop
        tty = bool(cfg.train.get("progress", True)) and sys.stderr.isatty() and jax.process_index() == 0
        self.bar = tqdm(total=total, initial=start, disable=not tty, desc=name, dynamic_ncols=True, leave=False)

    def step(self, done: int, metrics, sums) -> dict | None:
        """Count step ``done`` (``sums``: the interval's sums it returned); at a logging boundary, log
        and return the interval's row."""
        self.sums = sums
        self.count += 1
        if self.mark is None:
            jax.block_until_ready(metrics)
            now = time.perf_counter()
            self.mark = (now, done)
            log.info("%s: first step done in %.1f s (compilation included; not in the rates below)",
                     self.name, now - self.began)
        self.bar.update(1)
        if done % self.log_every == 0 or done == self.total:
            return self.flush(done)
        return None

    def flush(self, done: int) -> dict:
        row = to_python(jax.tree.map(lambda s: s / self.count, self.sums))
        self.sums, self.count = self.zeros(), 0
        now = time.perf_counter()
        then, at = self.mark
        rate = (done - at) / max(now - then - self.paused, 1e-9) if done > at else None
        self.mark, self.paused = (now, done), 0.0
        row["lr"] = self.learning_rate(done)
        speed = self.speed(rate) if rate is not None else {}
        row.update(speed)
        self.writer.write(done, "train", row)
        shown = " ".join(f"{k} {_fmt(v)}" for k, v in row.items() if isinstance(v, (int, float)) and k not in speed)
        tail = f" | {speed_text(speed)} | ETA {duration((self.total - done) / rate)}" if rate else ""
        log.info("%s step %d/%d: %s%s", self.name, done, self.total, shown, tail)
        if "loss" in row:
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", **({"step_s": f"{rate:.1f}"} if rate else {}))
        return row

    def speed(self, rate: float) -> dict:
        """The rates of an interval of ``rate`` steps/s: img/s, TFLOP/s and MFU where known."""
        out = {"steps_per_s": rate, "img_per_s": rate * self.batch_size}
        if self.flops:
            out["tflop_per_s"] = rate * self.flops / 1e12
            if self.peak:
                out["mfu"] = rate * self.flops / self.peak
        return out

    def snapshot(self) -> dict:
        """The open interval (saved with a checkpoint)."""
        return {"count": self.count, "sums": to_python(self.sums) if self.count else None}

    @contextlib.contextmanager
    def pause(self):
        """Time spent inside (evaluation, checkpoints) is left out of the rates."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self.paused += time.perf_counter() - t

    def close(self):
        self.bar.close()


def speed_text(speed: dict) -> str:
    """``12.3 steps/s 788 img/s 0.45 TFLOP/s MFU 31.2%`` (what :meth:`Progress.speed` gives)."""
    text = f"{speed['steps_per_s']:.1f} steps/s {speed['img_per_s']:.0f} img/s"
    if "tflop_per_s" in speed:
        text += f" {speed['tflop_per_s']:.3g} TFLOP/s"
    if "mfu" in speed:
        text += f" MFU {100 * speed['mfu']:.1f}%"
    return text


def all_finite(tree) -> bool:
    """Whether every floating leaf of ``tree`` (a logged row, or a state on its devices) is finite."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
    return bool(all(jnp.all(jnp.isfinite(x)) for x in leaves))
