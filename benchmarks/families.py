"""The compiled step of every method family, timed from its real-dataset config, in one run.

    python -m benchmarks.families [--only kd,cfl,...] [--batch 256] [--image-size 32] \
        [--steps 20] [--warmup 2] [--dtype bfloat16] [--json FILE]

Each family is a shipped config (the one a user would run on real data) whose method is built
exactly as ``jka train`` builds it; only the data source is replaced by random RGB images
(``throughput.synthetic_program``) and the teachers by randomly initialised models of the
config's architectures (speed does not depend on the weights). For the data-free methods one
"step" is one compiled schedule unit (generator + student steps for DFAD and DFQ, one synthesis round with
its student steps for DeepInversion and CMI), so ``ms_per_step`` is per unit and ``img_per_s``
counts the unit's synthesised batch once.

Per family: the fields of ``throughput.summarise`` (img/s, ms/step, compile s, peak memory, XLA
FLOPs and achieved TFLOP/s). On an accelerator the JSON goes to ``benchmarks/results/`` unless
``--json`` says where. The PyTorch side of the comparison is ``benchmarks/throughput.py`` (KD) and
``benchmarks/datafree_torch.py`` (DFAD, DFQ, DeepInversion, CMI) and ``benchmarks/onestage.py`` (DFAD and GAN
one- vs two-stage).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import jax

from benchmarks.throughput import (RESULTS_DIR, device_name, has_accelerator, synthetic_program, time_step,
                                   write_json)

# family → (config, teacher architectures, number of classes of the data, config overrides)
SUITE = {
    "kd": ("cifar/kd", ["cifar_resnet34"], 10, {}),
    "layerwise": ("amalgamation/cars_aircraft:method=layerwise", ["resnet18", "resnet18"], 296, {}),
    "cfl": ("amalgamation/cars_aircraft:method=cfl", ["resnet18", "resnet18"], 296, {}),
    "dfad_two_stage": ("datafree/cifar10:method=dfad,pair=resnet34_resnet18", ["cifar_resnet34"], 10,
                       {"dfad.one_stage": False}),
    "dfad_one_stage": ("datafree/cifar10:method=dfad,pair=resnet34_resnet18", ["cifar_resnet34"], 10,
                       {"dfad.one_stage": True}),
    "deepinversion_round": ("datafree/cifar10:method=deepinversion,pair=resnet34_resnet18",
                            ["cifar_resnet34"], 10, {}),
    "dfq_unit": ("datafree/cifar10:method=dfq,pair=resnet34_resnet18", ["cifar_resnet34"], 10, {}),
    "cmi_round": ("datafree/cifar10:method=cmi,pair=resnet34_resnet18", ["cifar_resnet34"], 10, {}),
}
# the data-free tasks of benchmarks/datafree_torch.py → their families (the config both sides read)
DATAFREE = {"dfad": "dfad_two_stage", "dfq": "dfq_unit", "deepinversion": "deepinversion_round", "cmi": "cmi_round"}


def round_overrides(task: str, iterations: int | None) -> dict:
    """The overrides that shorten an inversion round to ``iterations`` synthesis iterations and student
    steps (CPU smoke runs); none for the generator units or without ``iterations``."""
    if task in ("deepinversion", "cmi") and iterations:
        return {f"{task}.steps": iterations, f"{task}.kd_steps": iterations}
    return {}


def load(family: str, batch: int, overrides: dict | None = None):
    """The family's shipped config with the suite's overrides, then ``overrides`` (config keys → values),
    its batches set to ``batch``: the student's and an inversion method's synthesis batch."""
    from jka import run

    path, _, _, suite_overrides = SUITE[family]
    overrides = {**suite_overrides, **(overrides or {})}
    cfg = run.load(path, [f"{k}={v!r}" for k, v in overrides.items()])
    cfg.data.batch_size = batch
    section = cfg.get(cfg.algorithm, None)
    if section is not None and "batch_size" in section:
        section.batch_size = batch
    return cfg


def build(family: str, batch: int, image_size: int | None, dtype: str | None, overrides: dict | None = None):
    """The family's program (synthetic data, random teachers), its config and teachers; ``overrides``
    (config keys → values) are applied after the suite's own."""
    from jka import methods, models
    from jka.train.teachers import Teacher, compute_dtype

    _, archs, num_classes, _ = SUITE[family]
    cfg = load(family, batch, overrides)
    cfg.data.name = "synthetic"
    cfg.data.num_classes = num_classes
    if image_size:
        cfg.data.image_size = image_size
    if dtype:
        cfg.train.dtype = dtype
    size = int(cfg.data.get("image_size", 32) or 32)
    cfg.data.image_size = size
    teachers = []
    x0 = jax.numpy.zeros((1, size, size, 3), jax.numpy.float32)
    for k, (spec, arch) in enumerate(zip(cfg.teachers, archs)):
        classes = list(spec.get("classes", None) or range(int(cfg.data.num_classes)))
        module = models.create(arch, len(classes), dtype=compute_dtype(cfg))
        variables = jax.jit(lambda key, m=module: m.init(key, x0, train=False))(jax.random.PRNGKey(100 + k))
        teachers.append(Teacher(arch, module, variables, classes, {}))
    return cfg, synthetic_program(methods.get(cfg.algorithm), cfg, teachers), teachers


def bench_family(family: str, args, overrides: dict | None = None) -> dict:
    from jka.train import loop
    from jka.train import mesh as mesh_lib

    cfg, program, teachers = build(family, args.batch, args.image_size, args.dtype, overrides)
    mesh = mesh_lib.make_mesh(**cfg.train.get("mesh", {}))
    mesh_lib.check_batch(args.batch, mesh)
    batches = program.batches
    batch = batches.device_batch(0, mesh_lib.data_sharding(mesh))
    repl = mesh_lib.replicated(mesh)
    state = jax.device_put(program.init(jax.random.PRNGKey(0), batches.host_batch(0)), repl)
    teacher_vars = jax.device_put(loop.teacher_variables(program), repl)  # folded once, as the loop does
    step_fn = loop.compile_step(program, mesh)
    out = time_step(step_fn, state, (teacher_vars, batch), args.batch, args.steps, args.warmup)
    out.update(config=SUITE[family][0], overrides={**SUITE[family][3], **(overrides or {})},
               algorithm=cfg.algorithm, student=cfg.model.name, teachers=SUITE[family][1],
               image_size=int(cfg.data.image_size), dtype=cfg.train.dtype)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.families", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(SUITE), help=f"comma-separated families of {list(SUITE)}")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--image-size", type=int, default=None, help="override every config's image size")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default=None,
                   help="default: bfloat16 on an accelerator, float32 on CPU")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    args.dtype = args.dtype or ("bfloat16" if has_accelerator() else "float32")
    families = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = [f for f in families if f not in SUITE]
    if unknown:
        print(f"unknown families {unknown}; choose from {list(SUITE)}", file=sys.stderr)
        return 2
    result = {"device": device_name(), "jax_version": jax.__version__, "batch": args.batch, "dtype": args.dtype,
              "families": {}}
    path = args.json or (os.path.join(RESULTS_DIR, f"families_b{args.batch}_{args.dtype}_"
                                      f"{jax.devices()[0].device_kind.lower().replace(' ', '_')}.json")
                         if has_accelerator() else None)
    failed = 0
    for family in families:
        try:
            r = bench_family(family, args)
        except Exception as e:  # one family's failure (e.g. out of memory) must not lose the others' numbers
            failed += 1
            result["families"][family] = {"error": f"{type(e).__name__}: {e}"[:2000]}
            print(f"{family:22s} FAILED: {type(e).__name__}: {str(e)[:300]}", flush=True)
        else:
            result["families"][family] = r
            tflops = "" if r["tflops"] is None else f"  {r['tflops']:.1f} TFLOP/s"
            tflops += f"  MFU {100 * r['mfu']:.1f}%" if r.get("mfu") else ""
            print(f"{family:22s} {r['ms_per_step']:9.2f} ms/step  {r['img_per_s']:10.1f} img/s  "
                  f"compile {r['compile_s']:6.1f} s{tflops}", flush=True)
        if path:  # rewritten after every family, so a run cut short keeps what it measured
            write_json(result, path)
    if path:
        print("wrote", path)
    else:
        print(json.dumps(result, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
