"""What each method family's step costs on a TPU slice, from the TPU compiler alone (no TPU needed).

    python -m benchmarks.compiled_cost --topology v5e:2x2 --label before [--only kd,dfad] [--json FILE]

Each family is the shipped accelerator config a user would run (bf16), built exactly as ``jka train``
builds it with random teachers and stand-in images of the dataset's shape (``jka check``), and its
step compiled for the slice (``jka check --topology``, :mod:`jka.check.topology`). Per device it
records XLA's FLOPs and bytes accessed after fusion, jka's own FLOP count of the step (the jaxpr, whole
batch), the roofline bound ``max(FLOPs / peak, bytes / bandwidth)`` and the MFU it allows, the memory
the step needs, the number of fusions and the largest ones by bytes. This is the figure of merit of
every change meant to make a step cheaper: run it before and after in the same environment. Results
go to ``benchmarks/results/compiled_cost_<topology>_<label>.json`` (updated after every family, so an
interrupted run resumes); compiling a large step takes minutes on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import time

import jax

from jka import run
from jka.check import rehearse, topology

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
BF16 = ["train.dtype='bfloat16'"]
# family → (shipped config, overrides): the accelerator configs, KD at batch 1024 as the reference
SUITE = {
    "kd": ("cifar/kd", ["data.batch_size=1024"]),
    "supervised": ("cifar/teacher", ["model.name='cifar_resnet18'", "data.batch_size=1024"]),
    "dfad_unit": ("datafree/cifar10:method=dfad,pair=resnet34_resnet18", []),
    "dfq_unit": ("datafree/cifar10:method=dfq,pair=resnet34_resnet18", []),
    "deepinversion_round": ("datafree/cifar10:method=deepinversion,pair=resnet34_resnet18", []),
    "cmi_round": ("datafree/cifar10:method=cmi,pair=resnet34_resnet18", []),
    "layerwise_224": ("amalgamation/cars_aircraft:method=layerwise", []),
    "cfl_224": ("amalgamation/cars_aircraft:method=cfl", []),
    "ffl": ("distill/cifar100_ffl", []),
}


_COMPILE_UNIT = topology.compile_unit


def _keeping_text(path: str):
    """``topology.compile_unit`` that also writes the compiled HLO text to ``path``."""
    def compile_unit(program, mesh, cfg, where=""):
        compiled, seconds = _COMPILE_UNIT(program, mesh, cfg, where)
        with open(path, "w") as f:
            f.write(compiled.as_text())
        return compiled, seconds
    return compile_unit


def versions() -> dict:
    def version(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.abspath(__file__)))
    return {"jax": jax.__version__, "jaxlib": version("jaxlib"), "libtpu": version("libtpu"),
            "jka_commit": commit.stdout.strip() or None}


def measure(family: str, topology_name: str) -> dict:
    name, overrides = SUITE[family]
    cfg = run.load(name, BF16 + overrides)
    t0 = time.perf_counter()
    r = rehearse(cfg, topology_name=topology_name)
    t = r["tpu"]
    return {"config": name, "overrides": BF16 + overrides, "method": r["algorithm"], "batch": r["batch"],
            "image_shape": r["image_shape"], "jaxpr_flops_per_unit": r["flops_per_unit"],
            "xla_flops_per_device": t["flops"], "bytes_accessed_per_device": t["bytes_accessed"],
            "memory_bytes_per_device": t["memory_bytes"], "roofline_s": t["roofline_s"], "bound": t["bound"],
            "compute_s": t["compute_s"], "memory_s": t["memory_s"], "mfu_bound": t["mfu_bound"],
            "fusions": t.get("fusions"), "kernels": t.get("kernels"), "kernel_bytes": t.get("kernel_bytes"),
            "largest_kernels": t.get("largest_kernels"), "compile_s": t["compile_s"],
            "wall_s": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compiled_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--topology", default="v5e:2x2")
    p.add_argument("--label", default="now", help="what state of the code this is (before, after, ...)")
    p.add_argument("--only", default=",".join(SUITE), help=f"comma-separated families of {list(SUITE)}")
    p.add_argument("--json", default=None)
    p.add_argument("--hlo-dir", default=None, help="also write each family's compiled HLO text here "
                   "(FAMILY.hlo; benchmarks.step_floor reads it)")
    args = p.parse_args(argv)
    if args.hlo_dir:
        os.makedirs(args.hlo_dir, exist_ok=True)
    path = args.json or os.path.join(RESULTS, f"compiled_cost_{args.topology.replace(':', '_')}_{args.label}.json")
    out = json.load(open(path)) if os.path.exists(path) else {
        "what": "per-device cost of each family's step compiled for a TPU slice on a CPU host (deviceless AOT): "
                "XLA's FLOPs and bytes accessed after fusion, the roofline bound at the chip's data-sheet peaks",
        "topology": args.topology, "label": args.label, "versions": versions(), "host_cpus": os.cpu_count(),
        "families": {}}
    for family in [f.strip() for f in args.only.split(",") if f.strip()]:
        if family in out["families"]:
            continue
        if args.hlo_dir:
            topology.compile_unit = _keeping_text(os.path.join(args.hlo_dir, f"{family}.hlo"))
        out["families"][family] = row = measure(family, args.topology)
        print(f"{family}: {row['bytes_accessed_per_device'] / 1e9:.3g} GB, {row['xla_flops_per_device'] / 1e12:.3g} "
              f"TFLOP per device, roofline {row['roofline_s'] * 1e3:.3g} ms ({row['bound']}-bound, MFU <= "
              f"{row['mfu_bound']:.0%}), {row['fusions']} fusions, compiled in {row['compile_s']} s", flush=True)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
