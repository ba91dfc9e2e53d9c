"""Wall time of ``jka --help`` (and ``jka train --help``), for one or more checkouts of jka, interleaved.

    python -m benchmarks.cli_startup [CHECKOUT ...] [--repeats 5] [--json OUT]

Each run is a fresh process, ``python -m jka --help`` with ``PYTHONPATH=CHECKOUT``, timed from the
outside (start to exit, interpreter start-up included); the checkouts take turns, and the median of
``--repeats`` runs is reported per command and checkout. Nothing is compiled or trained: this is what
a user waits for before the help text appears.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

COMMANDS = (("--help",), ("train", "--help"))


def commit(path: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True,
                          text=True).stdout.strip()


def one_run(checkout: str, args: tuple) -> float:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": checkout}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "jka", *args], cwd=checkout, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0 or "usage: jka" not in done.stdout:
        raise SystemExit(f"{checkout}: jka {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return wall


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cli_startup", description=__doc__.split("\n\n")[0])
    p.add_argument("checkouts", nargs="*", default=["."])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    checkouts = [os.path.abspath(c) for c in args.checkouts]
    times = {(c, cmd): [] for c in checkouts for cmd in COMMANDS}
    for _ in range(args.repeats):
        for c in checkouts:
            for cmd in COMMANDS:
                times[c, cmd].append(one_run(c, cmd))
    results = {}
    for c in checkouts:
        label = f"{c} ({commit(c)})"
        results[label] = {}
        for cmd in COMMANDS:
            runs = times[c, cmd]
            results[label]["jka " + " ".join(cmd)] = {"median_s": round(statistics.median(runs), 3),
                                                      "runs_s": [round(t, 3) for t in runs]}
            print(f"{label}: jka {' '.join(cmd)}: median {statistics.median(runs):.2f} s of {len(runs)}", flush=True)
    out = {"what": "wall time of `python -m jka CMD` in a fresh process (median of the runs), interleaved",
           "python": platform.python_version(), "cpus": os.cpu_count(), "load_after": round(os.getloadavg()[0], 2),
           "results": results}
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
