"""In-memory datasets and a deterministic, step-indexed batch sampler."""
from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import jax
import numpy as np

from jka.errors import ConfigError


@dataclasses.dataclass
class ArrayDataset:
    """Images (N, H, W, C) as float32 in [0, 1] or uint8 in [0, 255], integer labels (N,)."""

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    mean: tuple = (0.0,)
    std: tuple = (1.0,)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple:
        return tuple(self.images.shape[1:])


def select_classes(ds: ArrayDataset, classes: Sequence[int] | None) -> ArrayDataset:
    """Keep only the samples of ``classes`` and relabel class ``classes[k]`` as ``k``.

    ``classes=None`` keeps everything. The order of ``classes`` defines the output index order, so
    a teacher over classes [5, 6, 7, 8, 9] predicts index 0 for digit 5.
    """
    if classes is None:
        return ds
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < ds.num_classes]
    if bad:
        raise ConfigError(
            f"class subset {classes} has classes {bad} outside 0..{ds.num_classes - 1}; "
            "fix data.classes / teachers[i].classes"
        )
    if len(set(classes)) != len(classes):
        raise ConfigError(f"class subset {classes} repeats a class; list each class once")
    lut = np.full(ds.num_classes, -1, np.int64)
    lut[classes] = np.arange(len(classes))
    new = lut[ds.labels]
    keep = new >= 0
    return dataclasses.replace(ds, images=ds.images[keep], labels=new[keep], num_classes=len(classes))


class Batches:
    """Global batch ``step`` is a pure function of (seed, step): resuming at step k replays the exact
    order of an uninterrupted run. Epochs are exact permutations of the dataset.

    In a multi-process run each process materialises only its own slice of the global batch, and
    :meth:`device_batch` assembles the global array sharded over the mesh.
    """

    def __init__(self, ds: ArrayDataset, batch_size: int, seed: int, shuffle: bool = True,
                 with_labels: bool = True):
        if batch_size > len(ds):
            raise ConfigError(
                f"batch size {batch_size} is larger than the dataset ({len(ds)} samples); lower data.batch_size"
            )
        self.ds, self.batch_size, self.seed, self.shuffle = ds, batch_size, seed, shuffle
        self.with_labels = with_labels
        self._perm_cache: dict[int, np.ndarray] = {}

    @property
    def steps_per_epoch(self) -> int:
        return len(self.ds) // self.batch_size

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm_cache:
            n = len(self.ds)
            if self.shuffle:
                perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            else:
                perm = np.arange(n)
            self._perm_cache = {epoch: perm}
        return self._perm_cache[epoch]

    def indices(self, step: int) -> np.ndarray:
        """Dataset indices of global batch ``step`` (drops each epoch's remainder)."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        start = pos * self.batch_size
        return self._perm(epoch)[start:start + self.batch_size]

    def host_batch(self, step: int) -> dict:
        idx = process_slice(self.indices(step))
        batch = {"image": self.ds.images[idx]}
        if self.with_labels:
            batch["label"] = self.ds.labels[idx].astype(np.int32)
        return batch

    def device_batch(self, step: int, sharding) -> dict:
        return to_global(self.host_batch(step), sharding)

    def iterate(self, start_step: int, sharding) -> Iterator[dict]:
        step = start_step
        while True:
            yield self.device_batch(step, sharding)
            step += 1


def process_slice(global_rows):
    """This process's contiguous share of a global batch (all of it in a one-process run)."""
    nproc, pid = jax.process_count(), jax.process_index()
    local = len(global_rows) // nproc
    return global_rows[pid * local:(pid + 1) * local]


def to_global(host_batch: dict, sharding) -> dict:
    """Assemble per-process slices into global arrays sharded by ``sharding``."""
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in host_batch.items()}


def eval_batches(ds: ArrayDataset, batch_size: int) -> Iterator[tuple[dict, int]]:
    """Fixed-size batches over the whole dataset in order; the last one is padded.

    Yields ``(batch, n_valid)``; padding repeats the first sample and carries ``mask=0``.
    """
    n = len(ds)
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)
        valid = idx < n
        idx = np.where(valid, idx, 0)
        yield {"image": ds.images[idx], "label": ds.labels[idx].astype(np.int32),
               "mask": valid.astype(np.float32)}, int(valid.sum())


class NoData:
    """For data-free algorithms: every batch is empty, so no real image can reach the step."""

    steps_per_epoch = 1

    def host_batch(self, step: int) -> dict:
        return {}

    def device_batch(self, step: int, sharding) -> dict:
        return {}
