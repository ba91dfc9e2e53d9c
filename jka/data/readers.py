"""Who reads the batches of a run (``data.reader``): jka's own :class:`jka.data.core.Prefetch`, or
grain (``pip install 'jka[grain]'``) for a dataset read on demand.

Both give the same batches: a grain pipeline here is a ``MapDataset`` over the *positions* of this
process's rows in the run's stream of batches (position ``p``: row ``p % local`` of this process's slice
of global batch ``p // local``), so an example is still a pure function of (seed, step, row), a run
resumed at step k starts the stream at k, and each process reads only its own slice. Examples are read
and decoded one by one (``READ_THREADS`` grain threads per process) and stacked by grain; with
``data.read_workers=N`` grain runs the pipeline in N processes making whole batches, handed back
through shared memory.
"""
from __future__ import annotations

import importlib.util

import numpy as np

from jka.data.core import Prefetch, to_global
from jka.errors import ConfigError

READERS = ("jka", "grain")
READ_THREADS = 2  # examples decoded at once in each grain process (PIL releases the GIL while decoding)
BUFFER = READ_THREADS  # batches each grain process reads at once (one per thread)


def check_reader(reader: str) -> None:
    """Refuse an unknown ``data.reader``, or ``grain`` where it is not installed, in one line."""
    if reader not in READERS:
        raise ConfigError(f"data.reader={reader!r} is not valid: it must be one of {', '.join(READERS)}")
    if reader == "grain" and importlib.util.find_spec("grain") is None:
        raise ConfigError("data.reader='grain' needs the grain package: pip install 'jka[grain]' "
                          "(or set data.reader='jka')")


def open_feed(batches, stop: int, workers: int = 0, sharding=None, reader: str = "jka"):
    """The run's reader of ``batches`` up to step ``stop``: a :class:`GrainFeed` when ``reader`` is
    ``grain`` and the data is read on demand, else a :class:`jka.data.core.Prefetch` (data held in
    memory always uses jka's reader thread, the faster there: benchmarks/README.md, data_loader.py)."""
    check_reader(reader)
    if reader == "grain" and getattr(getattr(batches, "ds", None), "reads_on_demand", False):
        return GrainFeed(batches, stop, workers, sharding)
    return Prefetch(batches, stop=stop, workers=workers, sharding=sharding)


class _Example:
    """Position ``p`` of this process's stream → the batch dict of its one row (leading axis 1)."""

    def __init__(self, batches, local: int):
        self.batches, self.local = batches, local

    def __call__(self, position: int) -> dict:
        step, i = divmod(int(position), self.local)
        return self.batches.examples(self.batches.local_rows(step)[i:i + 1])


def _stack(examples) -> dict:
    return {k: np.concatenate([e[k] for e in examples]) for k in examples[0]}


class GrainFeed:
    """:class:`jka.data.core.Prefetch`'s interface over a grain pipeline (module docstring). Steps are
    read in order from the first one asked for; any other step restarts the stream there (a resumed
    run asks for its first step once); steps from ``stop`` on are read directly."""

    def __init__(self, batches, stop: int, workers: int = 0, sharding=None):
        if workers < 0:
            raise ConfigError(f"data.read_workers={workers}; use 0 (grain's threads here) or a number of processes")
        self.batches, self.stop, self.workers, self.sharding = batches, stop, workers, sharding
        self.local = len(batches.local_rows(0))
        self.it, self.next_step = None, None

    def _open(self, start: int) -> None:
        import grain  # an optional package: imported only when data.reader='grain' (checked before any work)
        from absl import flags

        if not flags.FLAGS.is_parsed():  # grain's processes read an absl flag, which raises unless flags
            flags.FLAGS.mark_as_parsed()  # were parsed (google/grain#1355; jka never parses absl flags)

        ds = grain.MapDataset.range(start * self.local, self.stop * self.local)
        ds = ds.map(_Example(self.batches, self.local)).batch(self.local, batch_fn=_stack)
        ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=READ_THREADS, prefetch_buffer_size=BUFFER))
        if self.workers:
            ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.workers, per_worker_buffer_size=1))
        self.it, self.next_step = iter(ds), start

    def host_batch(self, step: int) -> dict:
        if step >= self.stop:
            return self.batches.host_batch(step)
        if step != self.next_step:
            self.close()
            self._open(step)
        self.next_step = step + 1
        return next(self.it)

    def device_batch(self, step: int) -> dict:
        return to_global(self.host_batch(step), self.sharding)

    def close(self) -> None:
        close = getattr(self.it, "close", None)
        if close is not None:
            close()
        self.it, self.next_step = None, None
