"""The compiled step's memory, checked against the device's free memory before the first step: a step
that cannot fit is one line (exit 2), not an allocation failure minutes later or an abort in XLA."""
from __future__ import annotations

import jax

from jka.data.sources import free_memory_bytes
from jka.errors import ConfigError


def step_memory(compiled) -> int | None:
    """Bytes one device holds while the compiled program runs (arguments, outputs not aliased to
    them, temporaries), or None where the backend does not say."""
    m = _analysis(compiled)
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def _analysis(compiled):
    try:
        return compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend reports it
        return None


def free_device_memory() -> int | None:
    """Bytes one local device can still allocate (on a CPU host, its share of the host's)."""
    device = jax.local_devices()[0]
    if device.platform == "cpu":
        free = free_memory_bytes()
        return None if free is None else free // jax.local_device_count()
    stats = device.memory_stats() or {}
    limit = stats.get("bytes_limit")
    return None if not limit else int(limit) - int(stats.get("bytes_in_use", 0))


def check_step_memory(compiled, fix: str, free: int | None = None) -> None:
    """Refuse a compiled step whose new allocations (outputs not donated, temporaries; its arguments
    are already on the device) exceed 90 % of the device's free memory (``free``: measured when None)."""
    m = _analysis(compiled)
    free = free_device_memory() if free is None else free
    if m is None or free is None:
        return
    new = int(m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)
    if new > 0.9 * free:
        raise ConfigError(f"one step needs {new / 1e9:.3g} GB more per device than the {free / 1e9:.3g} GB free on "
                          f"{jax.local_devices()[0].device_kind}; {fix}")
