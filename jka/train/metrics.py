"""Metrics to ``WORKDIR/metrics.jsonl`` (one JSON object per line) and TensorBoard when installed."""
from __future__ import annotations

import json
import os

import jax
import numpy as np


def to_python(tree):
    """Device arrays → plain floats/ints/lists for JSON."""
    def conv(a):
        a = np.asarray(jax.device_get(a))
        return a.item() if a.ndim == 0 else a.tolist()
    return jax.tree.map(conv, tree)


class MetricWriter:
    """Rows ``{"step": N, "train/loss": ...}``. A run resumed at step ``after`` first drops the
    rows an interrupted run wrote past its checkpoint, so no step appears twice."""

    def __init__(self, workdir: str, enabled: bool = True, after: int | None = None):
        self.enabled = enabled and jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.tb = None
        if self.enabled:
            os.makedirs(workdir, exist_ok=True)
            if after is not None and os.path.isfile(self.path):
                self._truncate(after)
            try:
                from tensorboardX import SummaryWriter  # optional
                self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
            except ImportError:
                self.tb = None

    def _truncate(self, after: int) -> None:
        with open(self.path) as f:
            rows = f.readlines()
        keep = [r for r in rows if r.strip() and json.loads(r).get("step", 0) <= after]
        if len(keep) != len(rows):
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                f.writelines(keep)
            os.replace(tmp, self.path)

    def write(self, step: int, prefix: str, metrics: dict):
        if not self.enabled:
            return
        flat = {f"{prefix}/{k}": v for k, v in metrics.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": int(step), **flat}) + "\n")
        if self.tb is not None:
            for k, v in flat.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)

    def close(self):
        if self.tb is not None:
            self.tb.close()
