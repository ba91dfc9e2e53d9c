"""``jka check CONFIG``: rehearse a run at its real shapes before paying for it.

The run is built as ``jka train`` builds it (the same algorithm, mesh, shardings and compiled step)
but with random teachers of the configured architectures and, when the dataset is not on this
machine, random images of its shape. One training unit (one step of ``jka train``) is compiled and,
unless ``execute=False``, run. The report: parameters of every trained network and of the teachers,
the largest arrays of the state (pools, banks, heads), the compiled step's memory, its FLOPs (counted
from the jaxpr: :mod:`jka.train.flops`), the time of one unit on this machine, and the whole run
projected here and on an H100 at the model FLOP utilisation jka measured there for that family
(FLOP-bound: a small model at a small batch is bound by per-step latency instead, so for those the
H100 figure is a lower bound).

Single-phase configs only: a job (adaptive amalgamation, branching, NetGraft, data-free
amalgamation, the transfer study) is refused with one line naming its phases' configs.
"""
from __future__ import annotations

import math
import os
import tempfile
import time

import jax
import numpy as np

from jka import models, run
from jka.data import ArrayDataset, load_split, select_classes
from jka.data.sources import STATS
from jka.errors import ConfigError, UserError
from jka.train import loop
from jka.train import mesh as mesh_lib
from jka.train.export import has_model, model_dir, read_info
from jka.train.flops import step_flops
from jka.train.phases import Phase
from jka.train.teachers import Teacher, compute_dtype

# Datasets a rehearsal can stand in for when they are not downloaded: (channels, classes).
KNOWN = {"cifar10": (3, 10), "cifar100": (3, 100), "mnist": (1, 10), "digits": (1, 10)}
# One H100 80GB HBM3, dense bf16 peak, and the model FLOP utilisation jka's step reached there at
# batch 256 (benchmarks/results/*_nvidia_h100_80gb_hbm3.json, 2026); other families use DEFAULT_MFU.
H100 = {"name": "H100 80GB (bf16)", "peak_flops": 989e12, "memory": 80e9}
H100_MFU = {"kd": 0.163, "distill": 0.163, "supervised": 0.163, "layerwise": 0.147, "cfl": 0.138, "dfad": 0.219,
            "dafl": 0.219, "zskt": 0.219, "dfq": 0.219, "deepinversion": 0.245, "cmi": 0.251}
DEFAULT_MFU = 0.15


def synthetic_split(cfg, n: int, seed: int) -> ArrayDataset:
    """``n`` random uint8 images of the configured dataset's shape, labels cycling over its classes."""
    name = cfg.data.get("name", None)
    if cfg.data.get("sources", None) or name not in KNOWN:
        raise UserError(f"jka check cannot stand in for the dataset {name or 'data.sources'!r} (not on this "
                        f"machine, and its shape is not known here: {', '.join(KNOWN)}); download it first")
    channels, classes = KNOWN[name]
    size = int(cfg.data.get("image_size", None) or (8 if name == "digits" else 32))
    rng = np.random.default_rng(seed)
    mean, std = STATS[name]
    return ArrayDataset(rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8),
                        (np.arange(n) % classes).astype(np.int32), classes, mean, std)


def dataset(cfg) -> tuple[ArrayDataset, ArrayDataset, str]:
    """(train, test, where they come from): the real splits, else random images of their shape."""
    try:
        return load_split(cfg.data, "train"), load_split(cfg.data, "test"), "the real dataset"
    except (UserError, ConfigError) as err:
        n = 4 * int(cfg.data.batch_size)
        why = str(err).splitlines()[0][:120]
        return synthetic_split(cfg, n, 0), synthetic_split(cfg, n, 1), f"random images of its shape ({why})"


def _teacher_arch(i: int, spec, cfg, workdir: str | None) -> tuple[str, dict, int | None, str]:
    """(arch, kwargs, outputs or None, where it was read) of ``teachers[i]``."""
    path = run.network_path(spec, workdir) if workdir else spec["workdir"]
    if has_model(path):
        info = read_info(os.path.join(model_dir(path), "model.json"))
        return info["arch"], dict(info.get("kwargs", {})), int(info["num_classes"]), f"exported model {path}"
    if spec.get("config", None) is not None:
        c = run.network_config(spec, cfg)
        classes = spec.get("classes", None) or c.data.get("classes", None)
        return c.model.name, dict(c.model.get("kwargs", {})), (len(classes) if classes else None), "its config"
    if spec.get("arch", None):
        classes = spec.get("classes", None)
        return spec["arch"], dict(spec.get("kwargs", {})), (len(classes) if classes else None), "teachers[i].arch"
    raise UserError(f"teachers[{i}] ({path}) has no exported model, no config and no 'arch': jka check cannot "
                    f"know its architecture; give teachers[{i}].arch (e.g. 'wrn40_2')")


def random_teachers(cfg, workdir: str | None, image_shape, num_classes: int) -> tuple[list[Teacher], list[str]]:
    """A teacher of each configured architecture with random variables, and where each arch was read."""
    dtype, teachers, sources = compute_dtype(cfg), [], []
    for i, spec in enumerate(cfg.get("teachers", ())):
        arch, kwargs, n, source = _teacher_arch(i, spec, cfg, workdir)
        classes = list(spec.get("classes", None) or range(n or num_classes))
        module = models.create(arch, len(classes), dtype=dtype, **kwargs)
        x = jax.numpy.zeros((1,) + tuple(image_shape), jax.numpy.float32)
        variables = jax.jit(lambda k, m=module: m.init(k, x, train=False))(jax.random.PRNGKey(100 + i))
        teachers.append(Teacher(arch, module, dict(variables), classes, kwargs))
        sources.append(f"{arch} ({source})")
    return teachers, sources


def _with_data(cls, train: ArrayDataset, test: ArrayDataset):
    class Rehearsed(cls):
        def load_data(self):
            self.student_classes = list(self.default_student_classes(self.cfg, train.num_classes))
            self.train_ds = select_classes(train, self.student_classes)
            self.test_ds = select_classes(test, self.student_classes)
            self.mean, self.std = train.mean, train.std

    Rehearsed.__name__ = cls.__name__
    return Rehearsed


def _sizes(state) -> tuple[dict, list]:
    """(parameters per trained network, the five largest arrays as (path, shape, bytes))."""
    params, arrays = {}, []
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        keys = [str(getattr(p, "name", getattr(p, "key", getattr(p, "idx", p)))) for p in path]
        if "params" in keys:
            owner = ".".join(keys[:keys.index("params")]) or "student"
            params[owner] = params.get(owner, 0) + int(np.prod(leaf.shape))
        elif keys and keys[0] == "extra" and "head" in keys:
            params["extra.head"] = params.get("extra.head", 0) + int(np.prod(leaf.shape))
        arrays.append((".".join(keys), tuple(int(s) for s in leaf.shape), int(leaf.size * leaf.dtype.itemsize)))
    return params, sorted(arrays, key=lambda a: -a[2])[:5]


def _memory(compiled) -> int | None:
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend reports it
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def rehearse(cfg, workdir: str | None = None, execute: bool = True, repeats: int = 2) -> dict:
    """Build, compile and (``execute``) run one unit of ``cfg``; the report as a dict."""
    kind = run._check(cfg, workdir)
    if isinstance(kind, run.Job):
        raise UserError(f"{cfg.algorithm!r} is a job of several phases; jka check rehearses single-phase "
                        "runs: check each phase's config (see docs/methods.md for the phases)")
    train_ds, test_ds, data_from = dataset(cfg)
    teachers, teacher_from = random_teachers(cfg, workdir, train_ds.image_shape, train_ds.num_classes)
    with tempfile.TemporaryDirectory(prefix="jka-check-") as tmp:
        algo, mesh = Phase(_with_data(kind, train_ds, test_ds), cfg, tmp, teachers).build()
        prepared = loop.prepare(algo, cfg, tmp, mesh)
        prepared.ckpt.close()
        state, tvars = prepared.state, prepared.teacher_vars
        batch = prepared.batches.device_batch(0, mesh_lib.data_sharding(mesh))
        params, largest = _sizes(state)
        try:
            flops = step_flops(algo.train_step, state, tvars, batch)
            t0 = time.perf_counter()
            compiled = loop.compile_step(algo, mesh, prepared.state_sharding, prepared.teacher_sharding) \
                .lower(state, tvars, batch).compile()
        except (TypeError, ValueError) as err:
            raise UserError(f"the step does not build at the configured shapes: {str(err).splitlines()[0][:300]}") from None
        compile_s = time.perf_counter() - t0
        times = []
        if execute:
            for _ in range(repeats + 1):
                t0 = time.perf_counter()
                state, metrics = compiled(state, tvars, batch)
                jax.block_until_ready(metrics)
                times.append(time.perf_counter() - t0)
    steps = int(algo.total_steps)
    unit_s = float(np.median(times[1:])) if len(times) > 1 else None
    mfu = H100_MFU.get(cfg.algorithm, DEFAULT_MFU)
    memory = _memory(compiled)
    return {
        "algorithm": cfg.algorithm, "data": data_from, "teachers": teacher_from,
        "image_shape": list(train_ds.image_shape), "batch": int(cfg.data.batch_size), "units": steps,
        "parameters": params, "teacher_parameters": [sum(int(np.prod(a.shape)) for a in jax.tree.leaves(t.variables))
                                                     for t in teachers],
        "largest_arrays": [{"path": p, "shape": list(s), "bytes": b} for p, s, b in largest],
        "step_memory_bytes": memory, "flops_per_unit": flops, "compile_s": round(compile_s, 2),
        "unit_s_here": unit_s, "run_s_here": unit_s * steps if unit_s else None,
        "device_here": f"{jax.device_count()} × {jax.devices()[0].device_kind}",
        "h100": {"mfu": mfu, "unit_s": flops / (H100["peak_flops"] * mfu), "run_s": steps * flops / (H100["peak_flops"] * mfu),
                 "fits": None if memory is None else memory < H100["memory"]},
    }


def _human(x: float | None, unit: str) -> str:
    if x is None:
        return "n/a"
    if unit == "s":
        for scale, name, below in ((1e-6, "µs", 1e-3), (1e-3, "ms", 1.0), (1.0, "s", 120), (60.0, "min", 7200),
                                   (3600.0, "h", 2 * 86400)):
            if x < below:
                return f"{x / scale:.3g} {name}"
        return f"{x / 86400:.3g} days"
    k = int(math.log(max(x, 1), 1000)) if x >= 1000 else 0
    return f"{x / 1000 ** k:.3g} {['', 'K', 'M', 'G', 'T', 'P'][min(k, 5)]}{unit}"


def format_report(r: dict) -> str:
    h = r["h100"]
    lines = [f"jka check: {r['algorithm']}, {r['units']} units, batch {r['batch']}, images {r['image_shape']} "
             f"({r['data']})",
             f"  teachers: {', '.join(r['teachers']) or 'none'}"
             + (f" — {', '.join(_human(n, '') for n in r['teacher_parameters'])} variables" if r["teachers"] else ""),
             "  trained parameters: " + ", ".join(f"{k} {_human(v, '')}" for k, v in r["parameters"].items()),
             "  largest state arrays: " + "; ".join(f"{a['path']} {tuple(a['shape'])} {_human(a['bytes'], 'B')}"
                                                   for a in r["largest_arrays"]),
             f"  one unit: {_human(r['flops_per_unit'], 'FLOP')}, compiled step memory {_human(r['step_memory_bytes'], 'B')}, "
             f"compiled in {r['compile_s']} s",
             f"  here ({r['device_here']}): {_human(r['unit_s_here'], 's')} per unit, the run {_human(r['run_s_here'], 's')}",
             f"  {H100['name']} at {h['mfu']:.0%} MFU (measured for this family at batch 256), FLOP-bound, so a "
             f"lower bound for small steps: {_human(h['unit_s'], 's')} per unit, the run ≥ {_human(h['run_s'], 's')}; "
             "fits in 80 GB: "
             f"{'unknown' if h['fits'] is None else 'yes' if h['fits'] else 'NO'}"]
    return "\n".join(lines)
