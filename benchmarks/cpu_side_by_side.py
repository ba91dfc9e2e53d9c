"""jka vs PyTorch on this machine's CPU, interleaved: ``benchmarks.throughput`` (``--task kd|supervised``)
or ``benchmarks.datafree_torch`` (``--task dfad|dfq|deepinversion|cmi``: the unit or round of the shipped
CIFAR config) run for each framework in turn, several times, each in its own process.

    python -m benchmarks.cpu_side_by_side [--task kd|supervised|dfad|dfq|deepinversion|cmi] [--batch 64] \
        [--steps 10] [--repeats 3] [--iterations N]

``--iterations`` shortens DeepInversion's and CMI's rounds (synthesis iterations and student steps per
round; the configs' are 1000 + 400 and 200 + 400) for CPU runs; the JSON records it.

One process per framework and repeat (jax, torch, jax, torch, ...), so neither warms the other's
caches or threads and a change in the machine's load hits both sides alike. Each row keeps the load
average before it started, the threads each framework used and both timings: every step
synchronised (the median) and the steps back to back with one synchronisation. The summary is the
median over repeats of each side and their ratio (jka's img/s over PyTorch eager's). Time it on an
idle machine: on a loaded one it measures the load.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

import jax

from benchmarks import families

DATAFREE = tuple(families.DATAFREE)  # benchmarks.datafree_torch's units: both sides do the config's work
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def one(framework: str, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "row.json")
        common = ["--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup), "--dtype",
                  "float32", "--framework", framework, "--torch-compile", "off", "--image-size", str(args.image_size),
                  "--json", out]
        if args.task in DATAFREE:  # the shipped CIFAR config's unit (its own models)
            cmd = [sys.executable, "-m", "benchmarks.datafree_torch", "--only", args.task, *common]
            cmd += ["--iterations", str(args.iterations)] if args.iterations else []
        else:
            cmd = [sys.executable, "-m", "benchmarks.throughput", "--task", args.task, "--teacher", args.teacher,
                   "--student", args.student, "--num-classes", str(args.num_classes), *common]
        load = os.getloadavg()
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        result = json.load(open(out))
    flags = result.get("xla_flags")
    if args.task in DATAFREE:
        result = result["families"][args.task]
        row = result["jka" if framework == "jax" else "torch"]
    else:
        row = result["jax" if framework == "jax" else "torch"]
    keep = ("img_per_s", "ms_per_step", "chained_ms_per_step", "compile_s", "flops_per_step", "torch_threads", "unit")
    return {"framework": framework, "load_before": [round(x, 2) for x in load], "xla_flags": flags,
            **{k: row.get(k) for k in keep if k in row}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cpu_side_by_side", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=("kd", "supervised", *DATAFREE), default="kd")
    p.add_argument("--teacher", default="cifar_resnet34")
    p.add_argument("--student", default="cifar_resnet18")
    p.add_argument("--num-classes", type=int, default=100)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iterations", type=int, default=None,
                   help="deepinversion/cmi: synthesis iterations and student steps per round (default: the config's)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rows = []
    for r in range(args.repeats):
        for framework in ("jax", "torch"):
            rows.append({"repeat": r, **one(framework, args)})
            x = rows[-1]
            print(f"repeat {r} {framework}: {x['ms_per_step']:.1f} ms/step synchronised, "
                  f"{x['chained_ms_per_step']:.1f} back to back (load {x['load_before'][0]})", flush=True)

    def med(framework, key):
        return statistics.median(x[key] for x in rows if x["framework"] == framework)

    summary = {k: {"jax_ms": med("jax", k), "torch_ms": med("torch", k),
                   "jka_speedup": med("torch", k) / med("jax", k)} for k in ("ms_per_step", "chained_ms_per_step")}
    datafree = args.task in DATAFREE
    if datafree:  # the config's teacher, student and classes, not the KD task's flags
        family = families.DATAFREE[args.task]
        (args.teacher,), args.num_classes = families.SUITE[family][1:3]
        args.student = families.load(family, args.batch).model.name
    out = {"what": f"jka vs PyTorch eager {'data-free unit' if datafree else 'training step'} on the CPU, float32, "
                   "interleaved processes",
           "date": datetime.date.today().isoformat(), "device": f"cpu ({platform.processor() or platform.machine()}, "
           f"{os.cpu_count()} cores)", "jax_version": jax.__version__, "task": args.task, "batch": args.batch,
           "config": {"teacher": args.teacher if args.task == "kd" or datafree else None, "student": args.student,
                      "datafree_config": families.SUITE[families.DATAFREE[args.task]][0] if datafree else None,
                      "iterations_override": args.iterations if datafree else None,
                      "num_classes": args.num_classes, "image_size": args.image_size, "steps": args.steps, "warmup": args.warmup},
           "summary": summary, "rows": rows}
    try:
        import torch
        out["torch_version"] = torch.__version__
    except ImportError:
        pass
    for k, v in summary.items():
        print(f"{k}: jka {v['jax_ms']:.1f} ms, PyTorch {v['torch_ms']:.1f} ms, jka {v['jka_speedup']:.2f}x")
    path = args.json or os.path.join(RESULTS, f"cpu_side_by_side_{args.task}_b{args.batch}_{out['date']}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
