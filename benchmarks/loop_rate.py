"""Steps per second of a real ``jka train`` run, for several checkouts of jka, interleaved.

    python -m benchmarks.loop_rate CHECKOUT [CHECKOUT ...] [--config digits/teacher] [--steps 1000]
        [--repeats 2] [--json OUT]

Measures what the training loop itself costs around the compiled step (dispatch, metric
accumulation, the batch's copy to the device): each checkout (a git worktree of jka at some commit)
runs the same command, ``python -m jka train CONFIG train.steps=N`` on the CPU, in turn, ``--repeats``
times; the rate is the mean of the logged intervals' ``steps_per_s`` after the first (which holds
the compilation). A small model, where the step is short, shows the loop's overhead most. The
load average before each run is recorded: time on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.throughput import write_json


def commit(path: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True,
                          text=True).stdout.strip()


def one_run(checkout: str, config: str, steps: int, log_every: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": checkout}
        cmd = [sys.executable, "-m", "jka", "train", config, f"train.steps={steps}", f"train.log_every={log_every}",
               "train.progress=False", "train.eval_every=0", *extra, "--workdir", os.path.join(work, "run")]
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{checkout}: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        rows = [json.loads(line) for line in open(os.path.join(work, "run", "metrics.jsonl"))]
    rates = [r["train/steps_per_s"] for r in rows if "train/steps_per_s" in r][1:]
    return {"steps_per_s": sum(rates) / len(rates), "intervals": len(rates), "load_before": round(load, 2),
            "wall_s": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.loop_rate", description=__doc__.split("\n\n")[0])
    p.add_argument("checkouts", nargs="+")
    p.add_argument("--config", default="digits/teacher")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--set", nargs="*", default=[], help="extra config overrides")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    runs = {c: [] for c in args.checkouts}
    for _ in range(args.repeats):
        for c in args.checkouts:
            runs[c].append(one_run(os.path.abspath(c), args.config, args.steps, args.log_every, args.set))
            print(f"{c} ({commit(c)}): {runs[c][-1]['steps_per_s']:.1f} steps/s (load {runs[c][-1]['load_before']})",
                  flush=True)
    out = {"what": "steps/s of `jka train` on the CPU (mean of the logged intervals after the first), interleaved",
           "config": args.config, "steps": args.steps, "overrides": args.set, "cpus": os.cpu_count(),
           "runs": {f"{c} ({commit(c)})": r for c, r in runs.items()}}
    if args.json:
        write_json(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
