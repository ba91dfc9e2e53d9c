"""Rehearse a run: every phase built as ``jka train`` builds it, one unit compiled and (maybe) run."""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time

import jax
import numpy as np

from jka import run
from jka.check import topology
from jka.check.sizes import count, largest, parts
from jka.check.standin import data_shape, random_like, random_teachers, standing_in
from jka.errors import UserError
from jka.train import loop
from jka.train import mesh as mesh_lib
from jka.train.export import export_model, to_host
from jka.train.flops import jaxpr_flops
from jka.train.memory import step_memory
from jka.train.phases import Phase

# One H100 80GB HBM3, dense bf16 peak, and the model FLOP utilisation jka's step reached there at
# batch 256 (benchmarks/results/*_nvidia_h100_80gb_hbm3.json, 2026): each method's ``h100_mfu``.
H100 = {"name": "H100 80GB (bf16)", "peak_flops": 989e12, "memory": 80e9}


def _quick_init(program, draw: bool):
    """``program`` whose ``init`` is traced for its shapes only, the state drawn in numpy: on a CPU an
    eager init compiles op by op and a jitted one slower than the step (10-20 s for a ResNet), and
    what a rehearsal measures does not depend on the values. An init that cannot be traced runs."""
    init = program.init

    def traced(rng, batch):
        try:
            return random_like(jax.eval_shape(init, rng, batch), params_only=True, draw=draw)
        except Exception:  # noqa: BLE001 - an init that reads values on the host: run it
            return init(rng, batch)

    return dataclasses.replace(program, init=traced)


def _trace(program, mesh, prepared, state, tvars, batch):
    """The step traced once, as ``jka train`` jits it (the FLOPs, then the program)."""
    try:
        return loop.compile_step(program, mesh, prepared.state_sharding, prepared.teacher_sharding).trace(state, tvars, batch)
    except (TypeError, ValueError) as err:
        raise UserError(f"the step does not build at the configured shapes: {str(err).splitlines()[0][:300]}") from None


def _fits(work):
    """``work()``, with running out of device memory as one line (an XlaRuntimeError otherwise)."""
    try:
        return work()
    except Exception as err:  # noqa: BLE001 - XlaRuntimeError; only running out of memory is the user's
        if "RESOURCE_EXHAUSTED" not in str(err) and "out of memory" not in str(err).lower():
            raise
        raise UserError(f"one unit does not fit in the memory of {jax.devices()[0].device_kind}: "
                        f"{str(err).splitlines()[0][:200]}") from None


def _run(compiled, state, tvars, batch, times: int):
    """(the state after ``times`` units, the seconds of each)."""
    seconds = []
    for _ in range(times):
        t0 = time.perf_counter()
        state, _ = _fits(lambda s=state: jax.block_until_ready(compiled(s, tvars, batch)))
        seconds.append(time.perf_counter() - t0)
    return state, seconds


def rehearse_phase(phase, execute: bool, repeats: int, memo: dict, found: dict, trace_only: bool = False,
                   export: bool = True, tpu=None) -> dict:
    """The report of ``phase``: built, one unit compiled (and run ``repeats`` + 1 times), its model
    exported (``export``: for the phases after it). ``trace_only`` stops after the FLOPs; ``tpu`` (a
    :class:`~jka.check.topology.Slice`): the unit also compiled for that slice (refused if it does not
    fit), its cost there in ``tpu``."""
    notes = {}
    with standing_in(phase.cfg, notes, memo):
        program, mesh = phase.build()
        program = _quick_init(program, draw=not trace_only)
        prepared = loop.prepare(program, phase.cfg, phase.workdir, mesh)
        on_tpu = tpu and topology.compile_unit(*phase.build(tpu.devices), phase.cfg, tpu.name)
    prepared.ckpt.close()
    state, tvars = prepared.state, prepared.teacher_vars
    batch = prepared.batches.device_batch(0, mesh_lib.data_sharding(mesh))
    traced = _trace(program, mesh, prepared, state, tvars, batch)
    flops = jaxpr_flops(traced.jaxpr.jaxpr)
    t0 = time.perf_counter()
    compiled = None if trace_only else _fits(lambda: traced.lower().compile())
    compile_s = None if trace_only else round(time.perf_counter() - t0, 2)
    state, times = _run(compiled, state, tvars, batch, repeats + 1) if execute and compiled else (state, [])
    if export:
        out = program.export(state)
        export_model(os.path.join(phase.workdir, "model"), out.arch, out.num_classes, to_host(out.variables), **out.info)
    report = _report(phase, program, state, flops, compiled, compile_s, times, notes, found, parts(state))
    if on_tpu:
        t = report["tpu"] = {**topology.cost(on_tpu[0], tpu, int(program.steps)), "compile_s": on_tpu[1]}
        if not t["fits"]:
            raise UserError(f"one unit does not fit the memory of a {t['device']} of {tpu.name}: it needs "
                            f"{t['memory_bytes'] / 1e9:.3g} GB of {t['hbm_bytes'] / 1e9:.3g} GB; {topology.TOO_BIG}")
    return report


def _report(phase, program, state, flops, compiled, compile_s, times, notes, found, sizes) -> dict:
    steps = int(program.steps)
    unit_s = float(np.median(times[1:])) if len(times) > 1 else None
    mfu = phase.method.h100_mfu
    mem = step_memory(compiled) if compiled else None
    h100_unit = flops / (H100["peak_flops"] * mfu)
    stood_in = "; ".join(f"{k}: {v}" for k, v in notes.items())
    return {
        "algorithm": program.name, "data": f"random images of its shape ({stood_in})" if notes else "the real dataset",
        "teachers": [found.get(id(t), f"{t.arch} (the model of phase {os.path.basename(t.path)})")
                     for t in program.teachers],
        "image_shape": list(program.data.image_shape), "batch": int(phase.cfg.data.batch_size), "units": steps,
        "model": phase.cfg.model.name, "model_kwargs": dict(program.details.get("model_kwargs", phase.cfg.model.get("kwargs", {}))),
        "classes": len(program.data.classes),
        "parameters": sizes[0], "frozen_parameters": sizes[1], "teacher_parameters": [count(t.variables) for t in program.teachers],
        "largest_arrays": [{"path": p, "shape": list(s), "bytes": b} for p, s, b in largest(state)],
        "step_memory_bytes": mem, "flops_per_unit": flops, "compile_s": compile_s,
        "unit_s_here": unit_s, "run_s_here": unit_s * steps if unit_s else None,
        "device_here": f"{jax.device_count()} × {jax.devices()[0].device_kind}",
        "h100": {"mfu": mfu, "unit_s": h100_unit, "run_s": steps * h100_unit,
                 "fits": None if mem is None else mem < H100["memory"]},
    }


def _total(cfg, method, phases: list[dict]) -> dict:
    """A job's report: its phases' and the sums over them."""
    here = [p["run_s_here"] for p in phases]
    mems = [p["step_memory_bytes"] for p in phases if p["step_memory_bytes"] is not None]
    fits = [p["h100"]["fits"] for p in phases]
    tpu = [p["tpu"] for p in phases if "tpu" in p]
    return {"algorithm": cfg.algorithm, "phases": phases, "units": sum(p["units"] for p in phases),
            **({"tpu": {"topology": tpu[0]["topology"], "run_s": sum(t["run_s"] for t in tpu),
                        "memory_bytes": max(t["memory_bytes"] for t in tpu)}} if tpu else {}),
            "step_memory_bytes": max(mems) if mems else None,
            "flops": sum(p["flops_per_unit"] * p["units"] for p in phases),
            "run_s_here": sum(here) if all(h is not None for h in here) else None,
            "h100": {"run_s": sum(p["h100"]["run_s"] for p in phases),
                     "fits": None if None in fits else all(fits)},
            "not_rehearsed": None if method.trains_student else "the job's own work after its phases (nothing trained)"}


def rehearse(cfg, workdir: str | None = None, execute: bool = True, repeats: int = 2, trace_only: bool = False,
             topology_name: str | None = None) -> dict:
    """Build, compile and (``execute``) run one unit of every phase of ``cfg``; the report: a single
    phase's (:func:`rehearse_phase`), or a job's ``phases`` and the sums over them. ``trace_only``:
    from the traced step alone, nothing compiled or run (a sweep over many configs). ``topology_name``
    (a TPU slice, ``v5e:2x2``): every unit compiled for that slice instead, nothing run."""
    tpu = topology.tpu_slice(topology_name) if topology_name else None  # no libtpu: one line, before any work
    trace_only = trace_only or tpu is not None
    execute = execute and not trace_only
    method = run.check(cfg, workdir)
    memo, draw = {}, not trace_only
    with tempfile.TemporaryDirectory(prefix="jka-check-") as tmp:
        with standing_in(cfg, memo=memo):
            shape, n = data_shape(cfg)
        teachers, found = random_teachers(cfg, workdir, shape, n, memo, draw)
        found = dict(zip(map(id, teachers), found))
        if not method.is_job:
            phase = Phase(method, cfg, os.path.join(tmp, "run"), teachers)
            return rehearse_phase(phase, execute, repeats, memo, found, trace_only, export=False, tpu=tpu)
        reports = []

        def visit(phase):  # each phase after the one before it, from its (random) exported model
            try:
                reports.append({"phase": phase.name, **rehearse_phase(phase, execute, repeats, memo, found, trace_only,
                                                                      export=not phase.final, tpu=tpu)})
            except UserError as err:
                raise type(err)(f"phase {phase.name}: {err}") from None
            return {"step": reports[-1]["units"], "eval": {}}

        def network(spec):  # a network the job trains first, with random teachers of its own
            def stand_ins(net_cfg, path):
                with standing_in(net_cfg, memo=memo):
                    net_shape, net_n = data_shape(net_cfg)
                return random_teachers(net_cfg, None, net_shape, net_n, memo, draw)[0]
            return run.network_phase(spec, tmp, cfg, stand_ins)

        run.drive(method, cfg, tmp, teachers, visit, rehearsal=True, network=network)
    return _total(cfg, method, reports)
