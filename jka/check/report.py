"""The report of :func:`jka.check.rehearse` as text."""
from __future__ import annotations

import math

from jka.check.rehearsal import H100


def human(x: float | None, unit: str) -> str:
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


def _fits(fits) -> str:
    return "unknown" if fits is None else "yes" if fits else "NO"


def _phase_lines(r: dict, head: str, indent: str) -> list[str]:
    """``head`` (the run's or a phase's) and the report of one phase, ``indent``ed."""
    h, what = r["h100"], "the run" if indent == "  " else "the phase"
    lines = [f"{head}: {r['algorithm']}, {r['units']} units, batch {r['batch']}, images {r['image_shape']} "
             f"({r['data']})",
            f"{indent}teachers: {', '.join(r['teachers']) or 'none'}"
            + (f" — {', '.join(human(n, '') for n in r['teacher_parameters'])} variables" if r["teachers"] else ""),
            f"{indent}trained parameters: " + ", ".join(f"{k} {human(v, '')}" for k, v in r["parameters"].items())
            + ("; frozen: " + ", ".join(f"{k} {human(v, '')}" for k, v in r["frozen_parameters"].items())
               if r["frozen_parameters"] else ""),
            f"{indent}largest state arrays: " + "; ".join(f"{a['path']} {tuple(a['shape'])} {human(a['bytes'], 'B')}"
                                                         for a in r["largest_arrays"]),
            f"{indent}one unit: {human(r['flops_per_unit'], 'FLOP')}, "
            + (f"compiled step memory {human(r['step_memory_bytes'], 'B')}, compiled in {r['compile_s']} s"
               if r["compile_s"] is not None else "traced only (not compiled: no memory)"),
            f"{indent}here ({r['device_here']}): {human(r['unit_s_here'], 's')} per unit, "
            f"{what} {human(r['run_s_here'], 's')}",
            f"{indent}{H100['name']} at {h['mfu']:.0%} MFU (measured for this family at batch 256), FLOP-bound, so a "
            f"lower bound for small steps: {human(h['unit_s'], 's')} per unit, "
            f"{what} ≥ {human(h['run_s'], 's')}; fits in 80 GB: {_fits(h['fits'])}"]
    return lines + (_tpu_lines(r["tpu"], indent, what) if "tpu" in r else [])


def _tpu_lines(t: dict, indent: str, what: str) -> list[str]:
    """The unit compiled for a TPU slice (:mod:`jka.check.topology`), per device."""
    return [f"{indent}{t['topology']} ({t['devices']} × {t['device']}, compiled here in {t['compile_s']} s), per device: "
            f"memory {human(t['memory_bytes'], 'B')} of {human(t['hbm_bytes'], 'B')} (fits: {_fits(t['fits'])}), "
            f"{human(t['flops'], 'FLOP')}, {human(t['bytes_accessed'], 'B')} accessed",
            f"{indent}roofline {human(t['roofline_s'], 's')} per unit ({t['bound']}-bound: FLOPs "
            f"{human(t['compute_s'], 's')}, bytes {human(t['memory_s'], 's')}), MFU at most {t['mfu_bound']:.0%}; "
            f"{what} ≥ {human(t['run_s'], 's')} on the slice"]


def format_report(r: dict) -> str:
    if "phases" not in r:
        return "\n".join(_phase_lines(r, "jka check", "  "))
    lines = [f"jka check: {r['algorithm']}, a job of {len(r['phases'])} phases, {r['units']} units in all"]
    for p in r["phases"]:
        lines += _phase_lines(p, f"  phase {p['phase']}", "    ")
    h = r["h100"]
    lines.append(f"  the whole job: {human(r['flops'], 'FLOP')}; here {human(r['run_s_here'], 's')}; {H100['name']} "
                 f"≥ {human(h['run_s'], 's')}; largest step memory {human(r['step_memory_bytes'], 'B')}, fits in "
                 f"80 GB: {_fits(h['fits'])}" + (f"; not rehearsed: {r['not_rehearsed']}" if r["not_rehearsed"] else ""))
    if "tpu" in r:
        lines.append(f"  on {r['tpu']['topology']}: the whole job ≥ {human(r['tpu']['run_s'], 's')}, largest memory per "
                     f"device {human(r['tpu']['memory_bytes'], 'B')}")
    return "\n".join(lines)
