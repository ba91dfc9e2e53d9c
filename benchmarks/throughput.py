"""Training-step throughput of jka vs PyTorch on the same models, batch and device, in one run.

    python -m benchmarks.throughput --task kd --teacher cifar_resnet34 --student cifar_resnet18 \
        --batch 256 --steps 50 [--framework jax|torch|both] [--json FILE] [--dtype bfloat16|float32]

The jax side is jka's own step: the ``kd``/``supervised`` method's program built from a config of
every default (``jka.configs.common.config``) and its step jitted with the state donated exactly as
``jka.train.loop`` does; only the data source is replaced by one random batch kept on the device
(both frameworks time the step, not the input pipeline; augmentation is off on both sides).
Timed steps are synchronised one by one after warm-up; the median gives img/s.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import jax
import numpy as np

from jka import xla_flags
from jka.check.standin import with_stand_in_data
from jka.train.flops import jaxpr_flops, peak_flops

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def has_accelerator() -> bool:
    return jax.default_backend() != "cpu"


def make_config(args):
    """The jka config of the benchmarked step (SGD + cosine, KD with T=4, α=1, β=1)."""
    from jka.configs.common import config

    cfg = config(args.task)
    cfg.model.name = args.student
    cfg.data.name = "synthetic"
    cfg.data.batch_size = args.batch
    cfg.data.image_size = args.image_size
    cfg.data.num_classes = args.num_classes
    cfg.data.mean, cfg.data.std = CIFAR_MEAN, CIFAR_STD  # the stand-in images' statistics, as torch's
    cfg.data.augment = dict(crop_pad=0, flip=False)
    cfg.optim.update(dict(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine"))
    if args.task == "kd":
        cfg.kd = dict(T=4.0, alpha=1.0, beta=1.0)
    cfg.train.steps = args.steps + args.warmup
    cfg.train.dtype = args.dtype
    return cfg


def random_images(args, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (args.batch, args.image_size, args.image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, args.num_classes, (args.batch,)).astype(np.int32)
    return images, labels


def synthetic_program(method, cfg, teachers, mesh=None):
    """``method`` built for ``cfg`` with its data replaced by random in-memory images of the config's
    ``data.image_size`` and ``data.num_classes`` (``data.name='synthetic'``; statistics
    ``data.mean``/``data.std`` when given); the step itself is untouched. This is jka check's stand-in
    data (:func:`jka.check.standin.with_stand_in_data`)."""
    return with_stand_in_data(method).program(cfg, teachers, mesh)


def peak_tflops() -> float | None:
    """The device's dense bf16 peak in TFLOP/s (:data:`jka.train.flops.PEAK_BF16_FLOPS`)."""
    peak = peak_flops()
    return peak / 1e12 if peak else None


def _flops(compiled) -> float | None:
    """XLA's own FLOP estimate, kept for reference only: on GPU it counts cuDNN convolutions as zero
    (MFU uses the jaxpr count of ``jka.train.flops`` instead)."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend reports costs
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    return float(cost["flops"]) if cost and "flops" in cost else None


def _peak_jax_memory(device) -> int | None:
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001
        return None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def summarise(times_s: list[float], batch: int, flops: float | None, compile_s: float, warmup_s: float,
              peak: int | None, **extra) -> dict:
    med = statistics.median(times_s)
    tflops = (flops / med / 1e12) if flops else None
    peak_tf = peak_tflops() if has_accelerator() else None
    return {"img_per_s": batch / med, "ms_per_step": 1e3 * med, "compile_s": compile_s, "warmup_s": warmup_s,
            "peak_mem_bytes": peak, "flops_per_step": flops, "tflops": tflops,
            "mfu": (tflops / peak_tf) if tflops and peak_tf else None, "timed_steps": len(times_s), **extra}


def bench_jax(args) -> dict:
    step_fn, state, rest = build_jax_step(args)
    return time_step(step_fn, state, rest, args.batch, args.steps, args.warmup)


def build_jax_step(args):
    """jka's jitted step for ``args`` (as ``jka.train.loop`` builds it), its state and its other inputs."""
    from jka import methods, models
    from jka.train import loop
    from jka.train import mesh as mesh_lib
    from jka.train.teachers import Teacher

    from jka.models import layers

    layers.FOLD_INFERENCE_BN = getattr(args, "fold_bn", True)
    cfg = make_config(args)
    dtype = {"float32": jax.numpy.float32, "bfloat16": jax.numpy.bfloat16}[args.dtype]
    teachers = []
    if args.task == "kd":
        module = models.create(args.teacher, args.num_classes, dtype=dtype)
        x0 = jax.numpy.zeros((1, args.image_size, args.image_size, 3), jax.numpy.float32)
        tvars = jax.jit(lambda k: module.init(k, x0, train=False))(jax.random.PRNGKey(1))
        teachers = [Teacher(args.teacher, module, tvars, list(range(args.num_classes)))]
    mesh = mesh_lib.make_mesh(**cfg.train.get("mesh", {}))
    mesh_lib.check_batch(args.batch, mesh)
    program = synthetic_program(methods.get(args.task), cfg, teachers, mesh)
    repl, dshard = mesh_lib.replicated(mesh), mesh_lib.data_sharding(mesh)
    images, labels = random_images(args)
    batch = jax.device_put({"image": images, "label": labels}, dshard)
    state = jax.device_put(program.init(jax.random.PRNGKey(0), {"image": images[:1], "label": labels[:1]}), repl)
    teacher_vars = jax.device_put(loop.teacher_variables(program), repl)  # folded once, as the loop does
    step_fn = jax.jit(program.step, donate_argnums=(0,), in_shardings=(repl, repl, dshard),
                      out_shardings=(repl, repl))  # as in jka.train.loop.fit
    return step_fn, state, (teacher_vars, batch)


def time_step(step_fn, state, rest: tuple, batch: int, steps: int, warmup: int) -> dict:
    """Compile ``step_fn(state, *rest) -> (state, metrics)``, run ``warmup`` untimed steps, then time
    ``steps`` steps one by one (each synchronised; ``summarise`` the median), then ``steps`` more back
    to back with one synchronisation (``chained_ms_per_step``, as the training loop runs)."""
    t0 = time.perf_counter()
    traced = step_fn.trace(state, *rest)  # traced once: its jaxpr gives the FLOPs, its lowering the program
    compiled = traced.lower().compile()
    compile_s = time.perf_counter() - t0
    flops = jaxpr_flops(traced.jaxpr.jaxpr)
    t0 = time.perf_counter()
    for _ in range(warmup):
        state, metrics = compiled(state, *rest)
    jax.block_until_ready(state)
    warmup_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, metrics = compiled(state, *rest)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(steps):  # as the loop runs: dispatched back to back, one synchronisation at the end
        state, metrics = compiled(state, *rest)
    jax.block_until_ready(state)
    chained_ms = 1e3 * (time.perf_counter() - t0) / steps
    loss = float(metrics["loss"]) if "loss" in metrics else None
    return summarise(times, batch, flops, compile_s, warmup_s,
                     _peak_jax_memory(jax.devices()[0]), flops_source="jaxpr", xla_flops=_flops(compiled),
                     chained_ms_per_step=chained_ms,
                     final_loss=loss,
                     devices=jax.device_count())


def bench_torch(args, compiled: bool, flops: float | None = None, flops_source: str | None = None,
                tuned: bool = False) -> dict:
    import torch

    from benchmarks.torch_steps import StepConfig, TorchStep, flops_per_step

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    cfg = StepConfig(task=args.task, student=args.student, teacher=args.teacher if args.task == "kd" else None,
                     num_classes=args.num_classes, lr=0.1, momentum=0.9, weight_decay=5e-4,
                     total_steps=args.steps + args.warmup, T=4.0, alpha=1.0, beta=1.0,
                     mean=CIFAR_MEAN, std=CIFAR_STD, bf16=args.dtype == "bfloat16")
    step = TorchStep(cfg, device, compiled=compiled, tuned=tuned)
    images, labels = random_images(args)
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)  # NCHW uint8 on device
    labels = torch.from_numpy(labels).long().to(device)
    if flops is None and not compiled:
        flops, flops_source = flops_per_step(step, images, labels), "torch.utils.flop_counter"
    return time_torch(lambda: step(images, labels), step.synchronize, device, args.batch, args.steps, args.warmup,
                      flops, flops_source=flops_source if flops else None, channels_last=True,
                      autocast_bf16=cfg.bf16)


def time_torch(call, synchronize, device, batch: int, steps: int, warmup: int, flops: float | None,
               **extra) -> dict:
    """PyTorch's side of ``time_step``: the first ``call()`` (which pays for ``torch.compile``) is the
    compile time, then ``warmup − 1`` untimed calls, then ``steps`` calls timed one by one, each
    synchronised; ``call`` returns the loss tensor. Peak memory is CUDA's allocator peak."""
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    call()
    synchronize()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(max(warmup - 1, 0)):
        call()
    synchronize()
    warmup_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = call()
        synchronize()
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(steps):  # back to back, one synchronisation at the end
        loss = call()
    synchronize()
    chained_ms = 1e3 * (time.perf_counter() - t0) / steps
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return summarise(times, batch, flops, compile_s, warmup_s, peak, final_loss=float(loss.detach()),
                     chained_ms_per_step=chained_ms, torch_threads=torch.get_num_threads(),
                     torch_device=str(device), **extra)


def device_name() -> str:
    d = jax.devices()[0]
    kind = getattr(d, "device_kind", "") or ""
    if d.platform == "cpu":
        return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return f"{d.platform} {kind}".strip()


COMPILE_OFF = "off (--torch-compile auto compiles only on CUDA; use --torch-compile on)"
# PyTorch's rows → the field with jka's speed-up over each (img/s ÷ img/s)
SPEEDUP_KEYS = {"torch": "speedup_vs_torch_eager", "torch_compile": "speedup_vs_torch_compile",
                "torch_tuned": "speedup_vs_torch_tuned_eager", "torch_tuned_compile": "speedup_vs_torch_tuned_compile"}


def wants_torch_compile(choice: str) -> bool:
    """``--torch-compile auto|on|off``: auto compiles on CUDA only (inductor on a small CPU takes minutes)."""
    import torch

    return choice == "on" or (choice == "auto" and torch.cuda.is_available())


def speedup(a, b):
    return a["img_per_s"] / b["img_per_s"] if a and b and "img_per_s" in a and "img_per_s" in b else None


def run(args, save=lambda result: None) -> dict:
    """Every side of ``args``; ``save(result)`` after each, so a run cut by a time limit keeps what it measured."""
    result = {"device": device_name(), "task": args.task, "batch": args.batch, "jax_version": jax.__version__,
              "xla_flags": os.environ.get("XLA_FLAGS", ""),
              "config": {"teacher": args.teacher if args.task == "kd" else None, "student": args.student,
                         "image_size": args.image_size, "num_classes": args.num_classes, "dtype": args.dtype,
                         "steps": args.steps, "warmup": args.warmup, "optimizer": "sgd(momentum=0.9, wd=5e-4)",
                         "loss": "kd(T=4)+ce" if args.task == "kd" else "ce",
                         "fold_inference_bn": getattr(args, "fold_bn", True)},
              "jax": None, "torch": None, "torch_compile": None}
    if args.framework in ("jax", "both"):
        result["jax"] = bench_jax(args)
        save(result)
    if args.framework in ("torch", "both"):
        try:
            import torch
        except ImportError:
            result["torch"] = result["torch_compile"] = {"skipped": "torch is not installed"}
        else:
            result["torch_version"] = torch.__version__
            flops = result["jax"]["flops_per_step"] if result["jax"] else None
            source = "jaxpr" if flops else None
            variants = ([] if getattr(args, "tuned_only", False) else [False]) + (
                [True] if getattr(args, "torch_tuned", False) else [])
            if False not in variants:
                result["torch"] = result["torch_compile"] = {"skipped": "--tuned-only (the plain rows: the kd group)"}
            for tuned in variants:
                eager, compiled = ("torch_tuned", "torch_tuned_compile") if tuned else ("torch", "torch_compile")
                result[eager] = bench_torch(args, False, flops, source, tuned=tuned)
                save(result)
                flops, source = result[eager]["flops_per_step"], result[eager]["flops_source"]
                if not wants_torch_compile(args.torch_compile):
                    result[compiled] = {"skipped": COMPILE_OFF}
                    continue
                try:
                    result[compiled] = bench_torch(args, True, flops, source, tuned=tuned)
                except Exception as err:  # noqa: BLE001 - inductor missing/failing must not end the run
                    result[compiled] = {"skipped": f"torch.compile failed: {type(err).__name__}: {err}"[:500]}
                save(result)
    for side, key in SPEEDUP_KEYS.items():
        if side in result:
            result[key] = speedup(result["jax"], result[side])
    result["mfu"] = (result["jax"] or {}).get("mfu")
    save(result)
    return result


def default_json_path(args) -> str | None:
    """Under benchmarks/results/ only when an accelerator ran it (CPU numbers are not recorded)."""
    if not has_accelerator():
        return None
    kind = (getattr(jax.devices()[0], "device_kind", "") or jax.default_backend()).lower().replace(" ", "_")
    teacher = f"{args.teacher}-" if args.task == "kd" else ""
    variant = "" if getattr(args, "fold_bn", True) else "_nofold"
    name = f"{args.task}_{teacher}{args.student}_b{args.batch}_{args.dtype}{variant}_{kind}.json"
    return os.path.join(RESULTS_DIR, name)


def write_json(result: dict, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    return path


def format_table(result: dict) -> str:
    rows = [f"{result['task']} step, batch {result['batch']}, {result['config']['dtype']} on {result['device']}"]
    for name in ("jax", "torch", "torch_compile", "torch_tuned", "torch_tuned_compile"):
        r = result.get(name)
        if not r:
            continue
        if "skipped" in r:
            rows.append(f"  {name:19s} skipped: {r['skipped']}")
            continue
        tf = f"{r['tflops']:.3f}" if r.get("tflops") else "n/a"
        mem = f"{r['peak_mem_bytes'] / 2**20:.0f} MiB" if r.get("peak_mem_bytes") else "n/a"
        mfu = f"  MFU {100 * r['mfu']:.1f}%" if r.get("mfu") else ""
        rows.append(f"  {name:19s} {r['img_per_s']:10.1f} img/s  {r['ms_per_step']:9.2f} ms/step  "
                    f"compile {r['compile_s']:.1f}s  warm-up {r['warmup_s']:.1f}s  {tf} TFLOP/s{mfu}  peak {mem}")
    for key in SPEEDUP_KEYS.values():
        if result.get(key) is not None:
            rows.append(f"  {key} = {result[key]:.2f}x")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=("kd", "supervised"), default="kd")
    p.add_argument("--teacher", default="cifar_resnet34")
    p.add_argument("--student", default="cifar_resnet18")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=50, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after compilation")
    p.add_argument("--framework", choices=("jax", "torch", "both"), default="both")
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default=None,
                   help="compute dtype (default: bfloat16 on an accelerator, float32 on CPU)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=100)
    p.add_argument("--torch-compile", choices=("auto", "on", "off"), default="auto",
                   help="auto: torch.compile on CUDA only (inductor on a small CPU takes minutes)")
    p.add_argument("--torch-tuned", action="store_true",
                   help="also time the strongest PyTorch: cudnn.benchmark, the teacher folded and in bf16, "
                        "torch.compile(mode='max-autotune') (rows torch_tuned, torch_tuned_compile)")
    p.add_argument("--tuned-only", action="store_true",
                   help="with --torch-tuned, time only the tuned PyTorch rows (gpu_suite's strong group)")
    p.add_argument("--no-fold-bn", dest="fold_bn", action="store_false",
                   help="run the teacher's inference BatchNorms as separate passes instead of folding them into "
                        "the convolutions (jka.models.layers.conv_bn), to measure what folding gains")
    p.add_argument("--json", default=None, help="write the result here (default: benchmarks/results/... on an "
                   "accelerator, nowhere on CPU)")
    return p


def main(argv=None) -> int:
    xla_flags.apply()  # jka's defaults, as the jka command sets them, before jax starts its backends
    args = build_parser().parse_args(argv)
    if args.dtype is None:
        args.dtype = "bfloat16" if has_accelerator() else "float32"
    if args.steps < 1 or args.batch < 1 or (args.tuned_only and not args.torch_tuned):
        print("--steps and --batch must be >= 1; --tuned-only needs --torch-tuned", file=sys.stderr)
        return 2
    path = args.json or default_json_path(args)
    result = run(args, save=(lambda r: write_json(r, path)) if path else (lambda r: None))
    print(format_table(result))
    if path:
        print(f"wrote {write_json(result, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
