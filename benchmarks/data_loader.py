"""Images per second of the on-demand data path: jka's reader against grain (``data.reader``), with 1,
2 and 4 reader processes (``data.read_workers``), on JPEG files; and the same for data held in memory.

Writes ``--n`` random 256×256 JPEGs (PIL, quality 90) into a temp dir and reads them through a
:class:`jka.data.records.RecordDataset` over a file source (each example decoded with PIL when
read, as a tfds source decodes its records). Each row opens the run's reader
(:func:`jka.data.readers.open_feed`, or :class:`jka.data.readers.GrainFeed` for grain on data in
memory, which a run does not use), reads a few batches (the readers start), then times ``--steps``
batches with nothing else running. One command, one table:

    python -m benchmarks.data_loader --json benchmarks/results/data_loader_cpu_$(date +%F).json
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np
from PIL import Image

from jka.data import ArrayDataset, Batches
from jka.data.folders import IMAGENET_STATS
from jka.data.readers import GrainFeed, open_feed
from jka.data.records import RecordDataset

CLASSES = 10


class JpegFiles:
    """A random-access source of JPEG files: ``source[i]`` = ``{"image": HxWx3 uint8, "label": int}``,
    decoded when asked (module level, so reader processes can unpickle it)."""

    def __init__(self, paths, labels):
        self.paths, self.labels = list(paths), list(labels)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        with Image.open(self.paths[i]) as im:
            return {"image": np.asarray(im.convert("RGB")), "label": self.labels[i]}


def write_jpegs(folder: str, n: int, size: int, seed: int = 0) -> JpegFiles:
    """``n`` random ``size``² JPEGs (smooth colour fields with noise, so they compress as photos do)."""
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        a = rng.uniform(0, 6, (3, 3))
        img = 127 + 60 * np.stack([np.sin(a[c, 0] * xx + a[c, 1] * yy + a[c, 2]) for c in range(3)], -1)
        img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
        paths.append(os.path.join(folder, f"{i:05d}.jpg"))
        Image.fromarray(img).save(paths[-1], quality=90)
        labels.append(int(rng.integers(CLASSES)))
    return JpegFiles(paths, labels)


def on_demand(source: JpegFiles, size: int) -> RecordDataset:
    mean, std = IMAGENET_STATS
    return RecordDataset(source, name="jpegs", split="train", image_key="image", label_key="label",
                         num_classes=CLASSES, image_shape=(size, size, 3), mean=mean, std=std)


def time_feed(feed, batch: int, warm: int, steps: int) -> float:
    """img/s of ``feed.host_batch`` over ``steps`` steps after ``warm`` untimed ones (the readers
    start and fill what they read ahead, which then counts in every timed window alike)."""
    try:
        for step in range(warm):
            feed.host_batch(step)
        t0 = time.perf_counter()
        for step in range(warm, warm + steps):
            feed.host_batch(step)
        return batch * steps / (time.perf_counter() - t0)
    finally:
        feed.close()


def machine() -> dict:
    info = dict(host=platform.node(), cpu_count=os.cpu_count(), processor=platform.processor() or platform.machine(),
                python=platform.python_version(), load_average=list(os.getloadavg()))
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="JPEG files to write")
    p.add_argument("--size", type=int, default=256, help="their side in pixels")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=100, help="timed batches per row")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="data.read_workers values")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from benchmarks.throughput import write_json

    with tempfile.TemporaryDirectory(prefix="jka_jpegs_") as folder:
        source = write_jpegs(folder, args.n, args.size)
        lazy = on_demand(source, args.size)
        held = ArrayDataset(lazy.images, lazy.labels, CLASSES, lazy.mean, lazy.std)
        rows = []
        cases = [("on demand", w, r) for w in args.workers for r in ("jka", "grain")]
        cases += [("in memory", 0, "jka"), ("in memory", 0, "grain")]
        for data, workers, reader in cases:
            batches = Batches(lazy if data == "on demand" else held, args.batch, seed=0)
            warm = 2 * workers + 2
            stop = warm + args.steps
            feed = (GrainFeed(batches, stop, workers) if reader == "grain"
                    else open_feed(batches, stop, workers=workers, reader=reader))
            rate = time_feed(feed, args.batch, warm, args.steps)
            rows.append(dict(data=data, reader=reader, read_workers=workers, img_per_s=round(rate, 1)))
            print(f"{data:>9}  {reader:>5}  read_workers={workers}  {rate:10.1f} img/s", flush=True)
    info = machine()
    print(f"load average at the end: {info['load_average']}")
    for w in args.workers:
        r = {x["reader"]: x["img_per_s"] for x in rows if x["data"] == "on demand" and x["read_workers"] == w}
        print(f"grain / jka at read_workers={w}: {r['grain'] / r['jka']:.2f}x")
    if args.json:
        write_json(dict(benchmark="data_loader", machine=info, n=args.n, image=[args.size, args.size, 3],
                        batch=args.batch, steps=args.steps, results=rows), args.json)
    return rows


if __name__ == "__main__":
    main()
