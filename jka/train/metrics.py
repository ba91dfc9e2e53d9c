"""Metrics to ``WORKDIR/metrics.jsonl`` (one JSON object per line) and, when tensorboardX is
installed, scalars and pictures to TensorBoard under ``WORKDIR/tensorboard``."""
from __future__ import annotations

import json
import os

import jax
import numpy as np

from jka import paths


def to_python(tree):
    """Device arrays → plain floats/ints/lists for JSON."""
    def conv(a):
        a = np.asarray(jax.device_get(a))
        return a.item() if a.ndim == 0 else a.tolist()
    return jax.tree.map(conv, tree)


class MetricWriter:
    """Rows ``{"step": N, "train/loss": ...}``. A run resumed at step ``after`` first drops the
    rows an interrupted run wrote past its checkpoint, so no step appears twice (``final``: the run
    resumes at its last step, whose evaluation it writes again: the earlier one is dropped too)."""

    def __init__(self, workdir: str, enabled: bool = True, after: int | None = None, final: bool = False):
        self.enabled = enabled and jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.tb = None
        if self.enabled:
            paths.makedirs(workdir)
            if after is not None and paths.isfile(self.path):
                self._truncate(after, final)
            try:
                from tensorboardX import SummaryWriter  # optional
                self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
            except ImportError:
                self.tb = None

    def _truncate(self, after: int, final: bool) -> None:
        rows = paths.read_text(self.path).splitlines(keepends=True)
        keep = [r for r in rows if r.strip() and (step := json.loads(r).get("step", 0)) <= after
                and not (final and step == after and any(k.startswith("eval/") for k in json.loads(r)))]
        if len(keep) != len(rows):
            paths.write(self.path, "".join(keep))

    def write(self, step: int, prefix: str, metrics: dict):
        if not self.enabled:
            return
        flat = {f"{prefix}/{k}": v for k, v in metrics.items()}
        paths.append(self.path, json.dumps({"step": int(step), **flat}) + "\n")
        if self.tb is not None:
            for k, v in flat.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)

    def image(self, step: int, tag: str, image) -> None:
        """One picture, a uint8 HxWxC array (C = 1, 3 or 4) or HxW grey, to TensorBoard at ``step``.
        A no-op without TensorBoard (tensorboardX not installed) and on every process but 0."""
        arr = np.asarray(jax.device_get(image))
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
            raise ValueError(f"MetricWriter.image takes an HxWxC image with C in 1, 3, 4; got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise ValueError(f"MetricWriter.image takes uint8 pixels (0-255), got {arr.dtype}")
        if self.tb is not None:
            self.tb.add_image(tag, arr, int(step), dataformats="HWC")

    def flush(self) -> None:
        if self.tb is not None:
            self.tb.flush()

    def close(self):
        if self.tb is not None:
            self.tb.close()
            self.tb = None  # later writes are no-ops, not errors on a closed file
