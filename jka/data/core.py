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

    def take(self, idx) -> tuple[np.ndarray, np.ndarray]:
        return self.images[idx], self.labels[idx]


def select_classes(ds: ArrayDataset, classes: Sequence[int] | None) -> ArrayDataset:
    """Only the samples of ``classes`` (None: all), class ``classes[k]`` relabelled ``k`` (so a
    teacher over classes [5, 6, 7, 8, 9] predicts index 0 for digit 5)."""
    if classes is None:
        return ds
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < ds.num_classes]
    if bad:
        raise ConfigError(f"class subset {classes} has classes {bad} outside 0..{ds.num_classes - 1}; "
                          "fix data.classes / teachers[i].classes")
    if len(set(classes)) != len(classes):
        raise ConfigError(f"class subset {classes} repeats a class; list each class once")
    if classes == list(range(ds.num_classes)):  # all of them, in order: nothing to select or read
        return ds
    lut = np.full(ds.num_classes, -1, np.int64)
    lut[classes] = np.arange(len(classes))
    new = lut[ds.labels]
    keep = new >= 0
    if getattr(ds, "reads_on_demand", False):  # jka.data.records: keep the rows, not the pixels
        return ds.subset(keep, lut, len(classes))
    return dataclasses.replace(ds, images=ds.images[keep], labels=new[keep], num_classes=len(classes))


class Batches:
    """Global batch ``step`` is a pure function of (seed, step), so resuming at step k replays an
    uninterrupted run's order; epochs are exact permutations of the dataset. Each process materialises
    only its slice of a global batch (:meth:`device_batch` assembles it over the mesh). ``with_index``
    adds each sample's dataset row (``'index'``, int32), for methods that keep a per-sample memory."""

    def __init__(self, ds: ArrayDataset, batch_size: int, seed: int, shuffle: bool = True,
                 with_labels: bool = True, with_index: bool = False):
        if batch_size > len(ds):
            raise ConfigError(f"batch size {batch_size} is larger than the dataset ({len(ds)} samples); "
                              "lower data.batch_size")
        self.ds, self.batch_size, self.seed, self.shuffle = ds, batch_size, seed, shuffle
        self.with_labels, self.with_index = with_labels, with_index
        self._perm_cache: dict[int, np.ndarray] = {}
        # Fixed here, so reader processes (Prefetch workers, which run no jax) slice the same rows.
        self.process = (jax.process_index(), jax.process_count())

    @property
    def steps_per_epoch(self) -> int:
        return len(self.ds) // self.batch_size

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm_cache:
            n = len(self.ds)
            perm = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
            self._perm_cache = {epoch: perm}
        return self._perm_cache[epoch]

    def indices(self, step: int) -> np.ndarray:
        """Dataset indices of global batch ``step`` (drops each epoch's remainder)."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        start = pos * self.batch_size
        return self._perm(epoch)[start:start + self.batch_size]

    def local_rows(self, step: int) -> np.ndarray:
        """Dataset indices of this process's rows of global batch ``step``."""
        return process_slice(self.indices(step), *self.process)

    def examples(self, rows) -> dict:
        """The batch dict (``image``, and ``label`` when read) of dataset rows ``rows``."""
        images, labels = self.ds.take(rows)
        batch = {"image": images}
        if self.with_labels:
            batch["label"] = labels.astype(np.int32)
        if self.with_index:
            batch["index"] = np.asarray(rows, np.int32)
        return batch

    def host_batch(self, step: int) -> dict:
        return self.examples(self.local_rows(step))

    def device_batch(self, step: int, sharding) -> dict:
        return to_global(self.host_batch(step), sharding)


class Prefetch:
    """``batches.device_batch`` with the next steps' batches (below ``stop``) read ahead and put on the
    devices (``sharding``), so reading, decoding and the copy overlap the device's work; the batches are
    the same. ``workers=0`` reads ``depth`` steps ahead on one thread, which also puts them on the
    devices; ``workers=N`` (``data.read_workers``: decoding data read on demand is more CPU work than one
    thread keeps up with) the next N steps in N processes, each given the batches once and running no
    jax. Data held in memory always uses the thread."""

    def __init__(self, batches, stop: int, depth: int = 2, workers: int = 0, sharding=None):
        import concurrent.futures as cf

        if workers < 0:
            raise ConfigError(f"data.read_workers={workers}; use 0 (one reader thread) or a number of processes")
        if workers and not getattr(getattr(batches, "ds", None), "reads_on_demand", False):
            workers = 0  # data held in memory: slicing it is cheap, and workers would each copy it
        self.batches, self.stop, self.sharding = batches, stop, sharding
        self.pending: dict = {}
        # the reader thread puts batches on the devices too; reader processes cannot (they run no jax)
        self.on_device = workers == 0 and sharding is not None
        if workers > 0:
            import multiprocessing

            self.depth, self.read = workers, _worker_host_batch
            self.pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                               initializer=_worker_init, initargs=(batches,))
        else:
            self.depth, self.read = depth, batches.host_batch
            if self.on_device:
                self.read = lambda step: to_global(batches.host_batch(step), sharding)
            self.pool = cf.ThreadPoolExecutor(1, thread_name_prefix="jka-data")

    def _fetch(self, step: int) -> dict:
        for s in range(step, min(step + self.depth + 1, self.stop)):
            if s not in self.pending:
                self.pending[s] = self.pool.submit(self.read, s)
        future = self.pending.pop(step, None)
        return future.result() if future is not None else self.read(step)

    def host_batch(self, step: int) -> dict:
        """Batch ``step``'s host arrays, the next ones read meanwhile (a Prefetch without a sharding)."""
        return self._fetch(step)

    def device_batch(self, step: int) -> dict:
        """Batch ``step`` on the devices (``sharding``); the next ones are read (and put there) meanwhile."""
        batch = self._fetch(step)
        return batch if self.on_device else to_global(batch, self.sharding)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pending.clear()


_WORKER_BATCHES = []


def _worker_init(batches) -> None:
    _WORKER_BATCHES[:] = [batches]


def _worker_host_batch(step: int) -> dict:
    return _WORKER_BATCHES[0].host_batch(step)


def process_slice(global_rows, pid: int | None = None, nproc: int | None = None):
    """Process ``pid``'s contiguous share of a global batch (this process's by default; all of it
    in a one-process run)."""
    pid = jax.process_index() if pid is None else pid
    nproc = jax.process_count() if nproc is None else nproc
    local = len(global_rows) // nproc
    return global_rows[pid * local:(pid + 1) * local]


def to_global(host_batch: dict, sharding) -> dict:
    """Assemble per-process slices into global arrays sharded by ``sharding``."""
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in host_batch.items()}


def eval_indices(n: int, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """``(rows, n_valid)`` of fixed-size batches over ``n`` samples in order, the last padded with row 0."""
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)
        yield np.where(idx < n, idx, 0), int(min(batch_size, n - start))


class NoData:
    """For data-free algorithms: every batch is empty, so no real image can reach the step."""

    steps_per_epoch = 1

    def host_batch(self, step: int) -> dict:
        return {}

    def device_batch(self, step: int, sharding) -> dict:
        return {}
