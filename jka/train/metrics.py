"""Where a run's metrics go: one :class:`MetricWriter` sends every row, picture and the config to the
writers ``train.writers`` names (each a :class:`Writer`):

- ``jsonl``: ``WORKDIR/metrics.jsonl``, one JSON object per logged step;
- ``tensorboard``: scalars, pictures and the config (as text) under ``WORKDIR/tensorboard`` (tensorboardX);
- ``csv``: ``WORKDIR/metrics.csv``, one ``step,key,value`` line per scalar (the keys of the train and
  eval rows differ, so the long form: any spreadsheet or ``pandas.pivot`` reads it);
- ``wandb``: a Weights & Biases run in ``WORKDIR/wandb`` (``WANDB_MODE=offline`` keeps it on disk,
  ``wandb sync`` uploads it later).

``train.writers=None`` (the default) is ``jsonl``, plus ``tensorboard`` when tensorboardX is installed;
a writer named whose package is not installed is refused before any work.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import json
import os

import jax
import numpy as np

from jka import paths
from jka.errors import ConfigError
from jka.train.workdir import flatten, plain


def to_python(tree):
    """Device arrays → plain floats/ints/lists for JSON."""
    def conv(a):
        a = np.asarray(jax.device_get(a))
        return a.item() if a.ndim == 0 else a.tolist()
    return jax.tree.map(conv, tree)


class Writer:
    """One destination of a run's metrics (process 0 only makes one); what a writer does not take is
    a no-op."""

    def scalars(self, step: int, values: dict) -> None:
        """``values``: ``{"train/loss": 0.3, ...}`` of one step (numbers, maybe lists for some keys)."""

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        """One picture, a uint8 H×W×C array (C = 1, 3 or 4)."""

    def hyperparameters(self, values: dict) -> None:
        """The run's config, flattened (``{"optim.lr": 0.1, "teachers.0.workdir": ...}``), at the start."""

    def flush(self) -> None: ...

    def close(self) -> None: ...


def _numbers(values: dict) -> dict:
    return {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _kept(step: int, keys, after: int, final: bool) -> bool:
    """Whether a row of ``step`` (with ``keys``) stays when a run resumes at ``after``: not past it,
    and (``final``: the run resumes at its last step and evaluates it again) not its evaluation."""
    return step <= after and not (final and step == after and any(k.startswith("eval/") for k in keys))


class JsonlWriter(Writer):
    """Rows ``{"step": N, "train/loss": ...}``; a run resumed at ``after`` first drops the rows written
    past its checkpoint (:func:`_kept`). Pictures are files already, the config is config.json."""

    def __init__(self, workdir: str, after: int | None = None, final: bool = False):
        self.path = os.path.join(workdir, "metrics.jsonl")
        if after is not None and paths.isfile(self.path):
            rows = paths.read_text(self.path).splitlines(keepends=True)
            parsed = [(r, json.loads(r)) for r in rows if r.strip()]
            keep = [r for r, row in parsed if _kept(row.get("step", 0), row, after, final)]
            if len(keep) != len(rows):
                paths.write(self.path, "".join(keep))

    def scalars(self, step, values):
        paths.append(self.path, json.dumps({"step": int(step), **values}) + "\n")


class CsvWriter(Writer):
    """``metrics.csv``: a ``step,key,value`` line per number; a resumed run drops the lines past its
    checkpoint (as :class:`JsonlWriter`)."""

    HEADER = "step,key,value\n"

    def __init__(self, workdir: str, after: int | None = None, final: bool = False):
        self.path = os.path.join(workdir, "metrics.csv")
        if not paths.isfile(self.path):
            paths.write(self.path, self.HEADER)
        elif after is not None:
            rows = list(csv.reader(io.StringIO(paths.read_text(self.path))))[1:]
            keep = [r for r in rows if r and _kept(int(r[0]), (r[1],), after, final)]
            if len(keep) != len(rows):
                paths.write(self.path, self.HEADER + self._lines(keep))

    @staticmethod
    def _lines(rows) -> str:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        return out.getvalue()

    def scalars(self, step, values):
        paths.append(self.path, self._lines([(int(step), k, repr(float(v))) for k, v in _numbers(values).items()]))


class TensorBoardWriter(Writer):
    """Scalars, pictures and the config (a JSON text) in ``WORKDIR/tensorboard``."""

    def __init__(self, workdir: str, after: int | None = None, final: bool = False):
        from tensorboardX import SummaryWriter  # optional: checked by check_writers

        self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def scalars(self, step, values):
        for k, v in _numbers(values).items():
            self.tb.add_scalar(k, v, int(step))

    def image(self, step, tag, image):
        self.tb.add_image(tag, image, int(step), dataformats="HWC")

    def hyperparameters(self, values):
        self.tb.add_text("config", "```\n" + json.dumps(values, indent=1, sort_keys=True, default=str) + "\n```")

    def flush(self):
        self.tb.flush()

    def close(self):
        self.tb.close()


class WandbWriter(Writer):
    """A Weights & Biases run in ``WORKDIR/wandb``, named after the workdir; its mode (online,
    offline) is wandb's own setting (``WANDB_MODE``)."""

    def __init__(self, workdir: str, after: int | None = None, final: bool = False):
        import wandb  # optional: checked by check_writers

        self.wandb = wandb
        local = None if paths.is_remote(workdir) else workdir  # wandb writes its files locally
        self.run = wandb.init(dir=local, name=os.path.basename(os.path.normpath(workdir)), reinit="create_new")

    def scalars(self, step, values):
        self.run.log(_numbers(values), step=int(step))

    def image(self, step, tag, image):
        self.run.log({tag: self.wandb.Image(image)}, step=int(step))

    def hyperparameters(self, values):
        self.run.config.update(values, allow_val_change=True)

    def close(self):
        self.run.finish()


# name → (the writer, the module it needs or None, the extra that installs it)
WRITERS = {"jsonl": (JsonlWriter, None, None), "csv": (CsvWriter, None, None),
           "tensorboard": (TensorBoardWriter, "tensorboardX", "tensorboard"), "wandb": (WandbWriter, "wandb", "wandb")}


def _installed(module: str | None) -> bool:
    return module is None or importlib.util.find_spec(module) is not None


def writer_names(names) -> tuple:
    """``train.writers`` as the writers a run uses (None: jsonl, and tensorboard when installed)."""
    if names is None:
        return ("jsonl",) + (("tensorboard",) if _installed("tensorboardX") else ())
    return tuple(dict.fromkeys(names))


def check_writers(names) -> None:
    """Refuse a writer whose package is not installed, before any work."""
    for name in writer_names(names):
        _, module, extra = WRITERS[name]
        if not _installed(module):
            raise ConfigError(f"train.writers names {name!r}, which needs {module} (not installed): "
                              f"pip install 'jka[{extra}]', or remove it from train.writers")


class MetricWriter:
    """Every writer of ``names`` (``train.writers``) behind one object; the no-op on every process
    but 0 (or with ``enabled=False``). ``after``: the step a run resumes at."""

    def __init__(self, workdir: str, enabled: bool = True, after: int | None = None, names=None, final: bool = False):
        self.enabled = enabled and jax.process_index() == 0
        self.writers: list[Writer] = []
        if self.enabled:
            paths.makedirs(workdir)
            check_writers(names)
            self.writers = [WRITERS[n][0](workdir, after, final) for n in writer_names(names)]

    def write(self, step: int, prefix: str, metrics: dict):
        flat = {f"{prefix}/{k}": v for k, v in metrics.items()}
        for w in self.writers:
            w.scalars(step, flat)

    def image(self, step: int, tag: str, image) -> None:
        """One picture (uint8, HxWxC with C = 1, 3 or 4, or HxW grey) to the writers that take pictures."""
        arr = np.asarray(jax.device_get(image))
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
            raise ValueError(f"MetricWriter.image takes an HxWxC image with C in 1, 3, 4; got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise ValueError(f"MetricWriter.image takes uint8 pixels (0-255), got {arr.dtype}")
        for w in self.writers:
            w.image(int(step), tag, arr)

    def hyperparameters(self, config) -> None:
        """The run's config (a nested dict or ConfigDict), flattened, to every writer."""
        if self.writers:
            values = flatten(plain(config))
            for w in self.writers:
                w.hyperparameters(values)

    def flush(self) -> None:
        for w in self.writers:
            w.flush()

    def close(self):
        writers, self.writers = self.writers, []  # later writes are no-ops, not errors on a closed file
        for w in writers:
            w.close()
