"""Data-free units, jka vs the PyTorch way, same device, one run: DFAD's and DFQ's schedule units,
DeepInversion's and CMI's rounds.

    python -m benchmarks.datafree_torch [--only dfad,dfq,deepinversion,cmi] [--batch 256] [--steps 5] \
        [--warmup 1] [--dtype bfloat16|float32] [--torch-compile auto|on|off] [--image-size N] \
        [--iterations N] [--framework jax|torch|both] [--torch-tuned [--tuned-only]] [--json FILE]

The jka side is the step ``benchmarks/families.py`` times (``dfad_two_stage``, ``dfq_unit``,
``deepinversion_round``, ``cmi_round``: ``configs/datafree/cifar10.py:method=...,pair=resnet34_resnet18``).
The PyTorch side (``benchmarks/torch_datafree.py``) reads every value from the same config and does the
same work with jka's PyTorch twins (channels_last, bf16 autocast, fused optimizers), written the way a
PyTorch user would (forward pre-hooks on the teacher's BatchNorms for the statistics prior):

- DFAD unit (``g_steps=1``, ``kd_steps=5``, the small generator): one generator step (Adam; maximise
  the L1 between teacher and student logits, the student fixed), then five student steps (SGD; L1 on
  fresh G samples).
- DFQ unit (``g_steps=1``, ``kd_steps=10``, the CMI harness's generator, ``T = 1``): one generator step
  on ``adv·(−kd) + bn·R_bn + oh·CE(t, argmax t) + bal·L_bal``, then ten student steps on ``kd``.
- DeepInversion round (``steps=1000``, ``kd_steps=400``): pixels optimised by Adam(0.1, β = 0.5, 0.99)
  on ``10·R_bn + CE(t, y) − js_3(s, t) + 0.001·L_tv`` of a jittered (±4 px roll) and flipped copy,
  clipped to [0, 1] pixels; the round's best batch into the uint8 pool; then 400 student steps.
- CMI round (``steps=200``, ``kd_steps=400``): a re-initialised small generator and latent z (Adam 1e-3,
  β = 0.5, 0.999) minimise ``R_bn + CE + 0.5·L_adv + 0.8·L_cr`` on a global (crop + flip) and a local
  (resized crop + flip) view of G(z); the contrastive feature is the spatial means of the teacher's
  stage inputs (512 values for resnet34), embedded by the persistent head (512 → 512 → 256) with 4096
  distinct negatives from the 40960-row bank, batch and bank rows averaged apart; the round's best
  batch into the pool, its features into the bank; then 400 student steps.

The rounds' student steps are ``kd(s, t, T = 20)`` on pool batches (crop 4 px + flip). The synthesis
batch and the student's are both ``--batch`` on both sides (``families.load``).
``torch.compile`` (``--torch-compile``; auto = on CUDA only) compiles each per-iteration forward + loss;
optimizer steps stay eager (fused). ``--iterations`` shortens DeepInversion's and CMI's rounds (synthesis
iterations and student steps) for CPU smoke runs only; the JSON records it. FLOPs (for TFLOP/s and MFU)
are jka's jaxpr count of the same unit, used for both frameworks.

``--torch-tuned`` also times the strongest PyTorch a user would run, as ``throughput.py --torch-tuned``
does for the KD step (rows ``torch_tuned``, ``torch_tuned_compile``; fields
``speedup_vs_torch_tuned_eager``, ``speedup_vs_torch_tuned_compile``, and ``mfu``, jka's):
``cudnn.benchmark``, channels_last, bf16 autocast, the frozen teacher's BatchNorms folded into its
convolutions by ``torch.fx`` and its weights in bf16, eager and ``torch.compile(mode="max-autotune")``.
DFQ's, DeepInversion's and CMI's BatchNorm prior stays exact on the folded teacher (its statistics are
recovered from the folded convolutions' outputs, ``torch_datafree.BNPrior``); each row names its
teacher's form (``teacher``). ``--tuned-only`` leaves out the plain PyTorch rows. Every row is timed
per synchronised unit (``ms_per_step``) and ``--steps`` units with one synchronisation
(``chained_ms_per_step``).
"""
from __future__ import annotations

import argparse
import os
import sys

# Both frameworks share one GPU in this process: without this, jax reserves 75 % of its memory up
# front and the PyTorch CMI round (≈ 19 GiB and more) runs out of memory (seen on an H100).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402

from benchmarks import families  # noqa: E402
from benchmarks.throughput import (COMPILE_OFF, RESULTS_DIR, SPEEDUP_KEYS, device_name, has_accelerator,  # noqa: E402
                                   speedup, time_torch, wants_torch_compile, write_json)
from jka import xla_flags  # noqa: E402

FAMILY = families.DATAFREE
# PyTorch's rows → (compiled, tuned)
TORCH_SIDES = {"torch": (False, False), "torch_compile": (True, False), "torch_tuned": (False, True),
               "torch_tuned_compile": (True, True)}


# ---------------------------------------------------------------------------------------------- the two sides
def bench_jka(name: str, args) -> dict:
    ns = argparse.Namespace(batch=args.batch, image_size=args.image_size, dtype=args.dtype, steps=args.steps,
                            warmup=args.warmup)
    return families.bench_family(FAMILY[name], ns, families.round_overrides(name, args.iterations))


def bench_torch(name: str, args, compiled: bool, flops: float | None, tuned: bool = False) -> dict:
    import torch

    from benchmarks.torch_datafree import SIDES  # PyTorch is only needed for this side

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    step = SIDES[name](args, device, compiled, tuned)
    return time_torch(step, step.synchronize, device, step.batch, args.steps, args.warmup, flops,
                      flops_source="jaxpr (jka's unit)", unit=step.unit, teacher=step.teacher_form,
                      cudnn_benchmark=torch.backends.cudnn.benchmark,
                      compile_mode=("max-autotune" if tuned else "default") if compiled else None)


def skip_reason(side: str, args) -> str | None:
    """Why ``side`` is not timed in this run, or None."""
    if side not in {"both": (side,), "jax": ("jka",), "torch": tuple(TORCH_SIDES)}[args.framework]:
        return f"--framework {args.framework}"
    if side in ("torch", "torch_compile") and args.tuned_only:
        return "--tuned-only"
    if side.endswith("_compile") and not wants_torch_compile(args.torch_compile):
        return COMPILE_OFF
    return None


def main(argv=None) -> int:
    xla_flags.apply()  # jka's defaults, as the jka command sets them, before jax starts its backends
    p = argparse.ArgumentParser(prog="python -m benchmarks.datafree_torch", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(FAMILY), help=f"comma-separated units of {list(FAMILY)}")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=5, help="timed units per framework")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default=None)
    p.add_argument("--torch-compile", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--image-size", type=int, default=None, help="override 32 (CPU smoke runs)")
    p.add_argument("--iterations", type=int, default=None,
                   help="DeepInversion's and CMI's synthesis iterations and student steps per round "
                        "(default: the configs' 1000 + 400 and 200 + 400); for CPU smoke runs")
    p.add_argument("--framework", choices=("jax", "torch", "both"), default="both",
                   help="which sides to time (benchmarks.cpu_side_by_side runs each in its own process)")
    p.add_argument("--torch-tuned", action="store_true",
                   help="also time the strongest PyTorch: cudnn.benchmark, the teacher folded and in bf16, "
                        "torch.compile(mode='max-autotune') (rows torch_tuned, torch_tuned_compile)")
    p.add_argument("--tuned-only", action="store_true", help="with --torch-tuned, leave out the plain PyTorch rows")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    args.dtype = args.dtype or ("bfloat16" if has_accelerator() else "float32")
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if any(n not in FAMILY for n in names) or args.steps < 1 or args.batch < 1 or (
            args.tuned_only and not args.torch_tuned):
        print(f"--only takes {sorted(FAMILY)}; --steps and --batch must be >= 1; --tuned-only needs --torch-tuned",
              file=sys.stderr)
        return 2
    import torch

    kind = (getattr(jax.devices()[0], "device_kind", "") or "cpu").lower().replace(" ", "_")
    suffix = "_tuned" if args.torch_tuned else ""
    path = args.json or (os.path.join(RESULTS_DIR, f"datafree{suffix}_b{args.batch}_{args.dtype}_{kind}.json")
                         if has_accelerator() else None)
    result = {"device": device_name(), "jax_version": jax.__version__, "torch_version": torch.__version__,
              "xla_flags": os.environ.get("XLA_FLAGS", ""),
              "batch": args.batch, "dtype": args.dtype, "iterations_override": args.iterations,
              "steps": args.steps, "warmup": args.warmup, "torch_tuned": args.torch_tuned, "families": {}}
    failed = 0
    sides = ["jka", *(s for s in TORCH_SIDES if args.torch_tuned or "tuned" not in s)]
    for name in names:
        r = result["families"][name] = {}
        for side in sides:
            try:
                if skip_reason(side, args):
                    r[side] = {"skipped": skip_reason(side, args)}
                elif side == "jka":
                    r[side] = bench_jka(name, args)
                else:
                    compiled, tuned = TORCH_SIDES[side]
                    r[side] = bench_torch(name, args, compiled, r.get("jka", {}).get("flops_per_step"), tuned)
            except Exception as e:  # one failure must not lose the other numbers
                failed += 1
                r[side] = {"error": f"{type(e).__name__}: {e}"[:2000]}
            row = r[side]
            line = (f"{row['ms_per_step']:10.1f} ms/unit  {row['img_per_s']:9.1f} img/s  "
                    f"compile {row['compile_s']:6.1f} s"
                    + (f"  MFU {100 * row['mfu']:.1f}%" if row.get("mfu") else "") if "ms_per_step" in row
                    else str(row)[:300])
            if "skipped" not in row:
                print(f"{name:13s} {side:19s} {line}", flush=True)
            for other in sides[1:]:
                r[SPEEDUP_KEYS[other]] = speedup(r.get("jka"), r.get(other))
            r["mfu"] = r.get("jka", {}).get("mfu")
            if path:  # after every row: a run cut short by its time limit keeps what it measured
                write_json(result, path)
        for key in (SPEEDUP_KEYS[other] for other in sides[1:]):
            if r.get(key):
                print(f"{name:13s} {key} = {r[key]:.2f}x")
    print("wrote", path) if path else None
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
