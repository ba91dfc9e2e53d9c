"""Where a jka step's device time goes: a profiler trace of a few steps, summed per XLA operation.

    python -m benchmarks.profile_step --task kd --batch 1024 --dtype bfloat16 [--steps 5] [--top 25] [--json FILE]

Builds the same step as ``benchmarks/throughput.py`` (same flags), compiles it, runs warm-up steps,
then traces ``--steps`` steps with ``jax.profiler`` and reads the trace back with
``jax.profiler.ProfileData`` (no TensorBoard needed). Reported per step: wall time, device busy
time (sum of the device's operation times; the difference is idle time, e.g. host round-trips or
launch gaps), time per category (convolutions, reduction fusions such as BatchNorm statistics,
other fusions, copies/transposes, the rest) and the most expensive operations.
"""
from __future__ import annotations

import glob
import json
import re
import tempfile
import time
from collections import defaultdict

import jax

from benchmarks.throughput import build_jax_step, build_parser, device_name, write_json

CATEGORIES = [("convolution", re.compile(r"conv|cudnn", re.I)),
              ("reduction fusion", re.compile(r"reduc", re.I)),
              ("copy / transpose", re.compile(r"copy|transpose", re.I)),
              ("fusion", re.compile(r"fusion", re.I))]


def category(name: str) -> str:
    return next((c for c, pattern in CATEGORIES if pattern.search(name)), "other")


def _hlo_op(event) -> str | None:
    """The XLA operation a GPU kernel event belongs to (its ``hlo_op`` stat), if the trace says."""
    try:
        stats = dict(event.stats)
    except Exception:  # noqa: BLE001 - stats layout differs between jax versions
        return None
    op = stats.get("hlo_op")
    return str(op) if op else None


def device_ops(xplane_path: str) -> tuple[dict, str, dict]:
    """{operation name: total ns} from the device plane's per-op line (``XLA Ops``), else from its
    busiest stream's kernels; also the name of the line used and every device line's total ns."""
    from jax.profiler import ProfileData

    data = ProfileData.from_file(xplane_path)
    by_line = {}
    for plane in data.planes:
        if not plane.name.startswith("/device:"):
            continue
        for line in plane.lines:
            totals = defaultdict(float)
            for ev in line.events:
                totals[_hlo_op(ev) or ev.name] += ev.duration_ns
            if totals:
                by_line[f"{plane.name} {line.name}"] = totals
    ops = [k for k in by_line if k.endswith("XLA Ops")]
    streams = [k for k in by_line if "Stream" in k]
    key = ops[0] if ops else (max(streams, key=lambda k: sum(by_line[k].values())) if streams else None)
    if key is None:
        raise SystemExit("profile_step reads the device timeline of a GPU or TPU trace, and this trace has "
                         "none (no accelerator?). Run it on a machine with an accelerator.")
    return dict(by_line[key]), key, {k: sum(v.values()) for k, v in by_line.items()}


def main(argv=None) -> int:
    p = build_parser()
    p.description = __doc__.split("\n\n")[0]
    p.add_argument("--top", type=int, default=25)
    p.set_defaults(steps=5, framework="jax")
    args = p.parse_args(argv)
    args.dtype = args.dtype or ("bfloat16" if jax.default_backend() != "cpu" else "float32")
    step_fn, state, rest = build_jax_step(args)
    compiled = step_fn.lower(state, *rest).compile()
    for _ in range(max(args.warmup, 1)):
        state, _ = compiled(state, *rest)
    jax.block_until_ready(state)
    trace_dir = tempfile.mkdtemp(prefix="jka_trace_")
    with jax.profiler.trace(trace_dir):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            state, _ = compiled(state, *rest)
        jax.block_until_ready(state)
        wall_ms = 1e3 * (time.perf_counter() - t0) / args.steps
    xplane = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)[0]
    ops, line, lines = device_ops(xplane)
    per_step = {k: v / args.steps / 1e6 for k, v in ops.items()}  # ms per step
    busy = sum(per_step.values())
    cats = defaultdict(float)
    for name, ms in per_step.items():
        cats[category(name)] += ms
    top = sorted(per_step.items(), key=lambda kv: -kv[1])[:args.top]
    result = {"device": device_name(), "jax_version": jax.__version__, "task": args.task, "batch": args.batch,
              "dtype": args.dtype, "teacher": args.teacher, "student": args.student, "trace_line": line,
              "wall_ms_per_step": wall_ms, "device_busy_ms_per_step": busy, "operations": len(per_step),
              "lines_ms": {k: v / args.steps / 1e6 for k, v in lines.items()},
              "categories_ms": dict(sorted(cats.items(), key=lambda kv: -kv[1])),
              "top_ms": dict(top)}
    print(f"{args.task} step, batch {args.batch}, {args.dtype} on {result['device']} ({line})")
    print(f"  wall {wall_ms:.2f} ms/step, device busy {busy:.2f} ms/step, {len(per_step)} distinct operations")
    for c, ms in result["categories_ms"].items():
        print(f"  {c:18s} {ms:8.2f} ms  {100 * ms / busy:5.1f}%")
    for name, ms in top:
        print(f"    {ms:8.3f} ms  {name[:110]}")
    if args.json:
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
