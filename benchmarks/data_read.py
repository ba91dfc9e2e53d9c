"""How fast one process builds its host batches from a tfds split: held in memory or read on demand.

Writes a tfds dataset of PNG-encoded RGB images to ``--data-dir`` (array_record, as ``tfds build``
does; no TensorFlow needed), then times ``Batches.host_batch`` over ``--steps`` steps for
``data.in_memory=True``, ``False`` (one reader thread) and ``False`` with ``--workers`` reader
processes (``data.read_workers``), all through the training loop's ``Prefetch`` with nothing else
running (the device step would overlap it). Compare img/s with a step's img/s: reading keeps up when
it is faster.

    python -m benchmarks.data_read --batch 256 --size 32 --steps 20
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import ml_collections
import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=32, help="image side in pixels")
    p.add_argument("--n", type=int, default=4096, help="training rows to write")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="reader processes (data.read_workers)")
    p.add_argument("--data-dir", default=None, help="where to write the dataset (default: a temp dir)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from benchmarks.throughput import write_json
    from jka.data import Batches, load_split
    from jka.data.core import Prefetch
    from tests.helpers import prepare_tfds_images

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="jka_read_")
    name = prepare_tfds_images(data_dir, n_train=args.n, n_test=args.batch, size=args.size)
    cfg = ml_collections.ConfigDict(dict(name=name, image_size=None, data_dir=data_dir, in_memory=True))
    rows = []
    for label, in_memory, workers in (("in memory", True, 0), ("on demand", False, 0),
                                      (f"on demand, {args.workers} reader processes", False, args.workers)):
        cfg.in_memory = in_memory
        t0 = time.perf_counter()
        ds = load_split(cfg, "train")
        load_s = time.perf_counter() - t0
        feed = Prefetch(Batches(ds, args.batch, seed=0), stop=args.steps + 1, workers=workers)
        feed.host_batch(0)  # starts the readers
        t0 = time.perf_counter()
        for step in range(1, args.steps + 1):
            feed.host_batch(step)
        ms = (time.perf_counter() - t0) / args.steps * 1e3
        feed.close()
        rows.append(dict(mode=label, read_workers=workers, load_s=round(load_s, 3), ms_per_batch=round(ms, 3),
                         img_per_s=round(args.batch / ms * 1e3, 1)))
        print(f"{label:>32}: load {load_s:6.2f} s, {ms:8.2f} ms per batch of {args.batch}, "
              f"{args.batch / ms * 1e3:9.0f} img/s")
    if args.json:
        write_json(dict(benchmark="data_read", host=platform.node(), cpu_count=os.cpu_count(),
                        batch=args.batch, image=[args.size, args.size, 3], rows_written=args.n, results=rows),
                   args.json)
    return rows


if __name__ == "__main__":
    main()
