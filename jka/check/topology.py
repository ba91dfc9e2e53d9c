"""``jka check --topology NAME``: a phase compiled for a TPU slice on any host, without the TPU.

The TPU compiler (libtpu, ``pip install 'jka[tpu]'``) describes a slice (``v5e:2x2``, ...) and compiles
for it ahead of time (deviceless, as MaxText's ``train_compile`` does): the step is lowered from the
shapes of its state, teachers and batch, sharded as ``jka train`` would shard it there. The compiled
program gives per device the step's memory, FLOPs and bytes read and written after fusion; with the
chip's data-sheet peaks (:data:`CHIPS`) that is a roofline time, ``max(FLOPs / peak, bytes /
bandwidth)``, the MFU it allows, and the run on the slice (a lower bound: latency and collectives).
"""
from __future__ import annotations

import dataclasses
import os
import re
import time

import jax
import numpy as np
from jax.experimental import topologies

from jka.errors import UserError
from jka.train import loop, mesh as mesh_lib
from jka.train.memory import step_memory

GiB = 1 << 30


@dataclasses.dataclass(frozen=True)
class Chip:
    """One TPU chip's data-sheet figures: dense bf16 peak (FLOP/s), HBM capacity and bandwidth."""

    peak_flops: float
    hbm_bytes: float
    hbm_bandwidth: float


CHIPS = {  # by jax's device_kind
    "TPU v3": Chip(123e12, 32 * GiB, 900e9),
    "TPU v4": Chip(275e12, 32 * GiB, 1228e9),
    "TPU v5 lite": Chip(197e12, 16 * GiB, 819e9),   # v5e
    "TPU v5": Chip(459e12, 95 * GiB, 2765e9),       # v5p
    "TPU v6 lite": Chip(918e12, 32 * GiB, 1640e9),  # v6e (Trillium)
}
EXAMPLES = "v5e:2x2, v4:2x2x1, v5p:2x2x1, v6e:4x4"


@dataclasses.dataclass(frozen=True)
class Slice:
    """A TPU slice's devices and one device's share of its chip (v3/v4 show a chip as two devices)."""

    name: str
    devices: list
    kind: str
    chips: int
    device: Chip


def _quiet_libtpu() -> None:
    """Tell libtpu it is alone: it looks for its TPU VM and prints pages of warnings without one."""
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", "v5litepod-4")
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    # compiling loads no TPU: several processes may hold libtpu (its lock file guards a real chip)
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")


def tpu_slice(name: str) -> Slice:
    """The devices of the TPU slice ``name`` (one line when libtpu is missing or the name unknown)."""
    _quiet_libtpu()
    try:
        desc = topologies.get_topology_desc(topology_name=name, platform="tpu")
    except Exception as err:  # noqa: BLE001 - RuntimeError without libtpu, libtpu's own errors otherwise
        if "lockfile" in str(err):
            raise UserError("another process holds the TPU compiler (libtpu runs in one process at a time): wait for "
                            "it, or remove /tmp/libtpu_lockfile if that process is gone") from None
        if "not installed" in str(err):
            raise UserError("jka check --topology compiles for a TPU slice with the TPU compiler, which is not "
                            "installed: pip install 'jka[tpu]' (it runs on any host, no TPU needed)") from None
        raise UserError(f"--topology {name!r} is not a TPU slice the TPU compiler knows ({_first(err)}); "
                        f"name one such as {EXAMPLES}") from None
    devices = list(desc.devices)
    kind = devices[0].device_kind
    if kind not in CHIPS:
        raise UserError(f"jka has no data-sheet figures for {kind!r} (--topology {name}); it knows "
                        f"{', '.join(CHIPS)}")
    chips = len({tuple(d.coords) for d in devices})
    share = chips / len(devices)
    c = CHIPS[kind]
    return Slice(name, devices, kind, chips, Chip(c.peak_flops * share, c.hbm_bytes * share, c.hbm_bandwidth * share))


def _first(err: Exception) -> str:
    return " ".join(str(err).split())[:160]


def _shapes(tree, shardings):
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(np.shape(a), a.dtype, sharding=s), tree, shardings)


TOO_BIG = "use a larger slice, a smaller data.batch_size, or split the state (train.mesh.model, train.shard.state)"


def compile_unit(program, mesh, cfg, where: str = ""):
    """(the step compiled for ``mesh``'s devices from shapes alone, seconds it took); ``where``: the
    slice, for the line that says a unit does not fit it."""
    shard = cfg.train.get("shard", {})
    min_size = int(shard.get("min_size", 1 << 14))
    batch = program.batches.host_batch(0)
    state = jax.eval_shape(program.init, jax.random.PRNGKey(0), batch)
    teachers = loop.teacher_variables(program)
    state_sh = mesh_lib.param_shardings(state, mesh, bool(shard.get("state", False)), min_size)
    teacher_sh = mesh_lib.param_shardings(teachers, mesh, bool(shard.get("teachers", True)), min_size)
    batch_sh = jax.tree.map(lambda _: mesh_lib.data_sharding(mesh), batch)
    step = loop.compile_step(program, mesh, state_sh, teacher_sh)
    t0 = time.perf_counter()
    try:
        compiled = step.lower(_shapes(state, state_sh), _shapes(teachers, teacher_sh), _shapes(batch, batch_sh)).compile()
    except Exception as err:  # noqa: BLE001 - XlaRuntimeError: running out of memory is the user's to fix
        if "RESOURCE_EXHAUSTED" in str(err) or "memory" in str(err).lower():
            raise UserError(f"one unit does not fit the memory of a {mesh.devices.flat[0].device_kind} of {where} "
                            f"({_first(err)}): {TOO_BIG}") from None
        raise
    return compiled, round(time.perf_counter() - t0, 1)


INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\(.*?\)|\S+)\s+([\w\-]+)\((.*?)\)(.*)$")
ARRAY = re.compile(r"\b(pred|[suf]\d+|bf16)\[([\d,]*)\]")
KERNELS = ("fusion", "convolution", "custom-call", "copy", "reduce", "all-reduce", "dot", "transpose")
NO_TRAFFIC = ("ConcatBitcast", "AllocateBuffer")  # TPU custom calls that rename or reserve memory, moving nothing


def _bytes(types: str) -> int:
    total = 0
    for dtype, dims in ARRAY.findall(types):
        size = 2 if dtype == "bf16" else 1 if dtype == "pred" else max(1, int(dtype[1:]) // 8)
        total += size * int(np.prod([int(d) for d in dims.split(",") if d], dtype=np.int64))
    return total


def fusions(hlo_text: str) -> list[dict]:
    """Every kernel of the compiled module's top-level computations (but :data:`NO_TRAFFIC`): name, op
    (a fusion's kind) and the bytes of its output and operands (read once each), largest first."""
    types, kernels, top = {}, [], False
    for line in hlo_text.splitlines():
        if not line.startswith(" "):  # a computation's header or end: fused computations are inside kernels
            top = line.startswith("ENTRY") or (line.startswith("%") and not line.startswith(("%fused", "%wrapped")))
            continue
        m = INSTRUCTION.match(line)
        if not m:
            continue
        name, out_type, op, operands, rest = m.groups()
        types[name] = out_type
        if top and op in KERNELS and not any(f'"{t}"' in rest for t in NO_TRAFFIC):
            kind = re.search(r"kind=(\w+)", rest) if op == "fusion" else None
            used = dict.fromkeys(re.findall(r"%([\w.\-]+)", operands))
            kernels.append({"name": name, "op": kind.group(1) if kind else op,
                            "bytes": _bytes(out_type) + sum(_bytes(types.get(u, "")) for u in used)})
    return sorted(kernels, key=lambda k: -k["bytes"])


def cost(compiled, sl: Slice, units: int, largest: int = 8) -> dict:
    """Per device: memory, FLOPs and bytes accessed (after fusion), the roofline step time, the MFU it
    allows, ``units`` steps on the slice, and the kernels (the ``largest`` by bytes)."""
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    flops, accessed = float(analysis.get("flops", 0.0)), float(analysis.get("bytes accessed", 0.0))
    memory = step_memory(compiled)
    compute_s, memory_s = flops / sl.device.peak_flops, accessed / sl.device.hbm_bandwidth
    step_s = max(compute_s, memory_s, 1e-12)
    return {"topology": sl.name, "device": sl.kind, "devices": len(sl.devices), "chips": sl.chips,
            "memory_bytes": memory, "hbm_bytes": sl.device.hbm_bytes, "fits": memory <= sl.device.hbm_bytes,
            "flops": flops, "bytes_accessed": accessed, "compute_s": compute_s, "memory_s": memory_s,
            "roofline_s": step_s, "bound": "compute" if compute_s >= memory_s else "memory",
            "mfu_bound": compute_s / step_s, "run_s": units * step_s,
            **_fusion_summary(compiled, largest)}


def _fusion_summary(compiled, largest: int) -> dict:
    try:
        found = fusions(compiled.as_text())
    except Exception:  # noqa: BLE001 - a backend without the module's text
        return {}
    return {"fusions": sum(f["op"].startswith("k") for f in found), "kernels": len(found),
            "kernel_bytes": sum(f["bytes"] for f in found), "largest_kernels": found[:largest]}
