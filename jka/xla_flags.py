"""XLA flags jka sets by default, before jax starts its backends (standard library only).

On the CPU, XLA (jaxlib 0.10) hands each convolution to YNNPACK by default. Here that kernel is about
twice as slow as XLA's own (Eigen) convolution, forward and backward: one 3×3 convolution, batch 64,
64 channels at 32×32, forward and both gradients, 210 ms against 123 ms; jka's KD step
(cifar_resnet34 → cifar_resnet18, batch 64, float32) 3.1 s against 2.5 s per step
(``benchmarks/README.md``, "XLA:CPU convolutions"). So jka's command and benchmarks keep convolutions
off YNNPACK: ``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``. The flag only
concerns the CPU backend; GPUs and TPUs never read it.

It is added only where it is safe and wanted:

- the installed jaxlib is a version where the flag was measured (a jaxlib that does not know a flag
  in ``XLA_FLAGS`` aborts the process, so a newer one gets nothing until it is measured again);
- ``XLA_FLAGS`` does not already set ``xla_cpu_experimental_ynn_fusion_type`` (the user's choice wins);
- ``JKA_XLA_DEFAULTS`` is not ``0`` (the way to run with XLA's own defaults).

The ``jka`` command applies it at start (:mod:`jka.entry`); a library user calls :func:`apply` before
the first jax computation, or sets the flag in ``XLA_FLAGS`` directly.
"""
from __future__ import annotations

import os
from importlib import metadata

CPU_CONVOLUTION = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
MEASURED_JAXLIB = ("0.10.",)  # jaxlib versions on which the flag exists and was measured


def wanted(env=None, jaxlib_version: str | None = None) -> list[str]:
    """The flags :func:`apply` would add to ``XLA_FLAGS`` in ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    if env.get("JKA_XLA_DEFAULTS", "1") == "0" or "xla_cpu_experimental_ynn_fusion_type" in env.get("XLA_FLAGS", ""):
        return []
    if jaxlib_version is None:
        try:
            jaxlib_version = metadata.version("jaxlib")
        except metadata.PackageNotFoundError:
            return []
    return [CPU_CONVOLUTION] if jaxlib_version.startswith(MEASURED_JAXLIB) else []


def apply(env=None, jaxlib_version: str | None = None) -> list[str]:
    """Add jka's default XLA flags to ``XLA_FLAGS``; returns the flags added. Call before jax's first use."""
    env = os.environ if env is None else env
    added = wanted(env, jaxlib_version)
    if added:
        env["XLA_FLAGS"] = " ".join([env.get("XLA_FLAGS", ""), *added]).strip()
    return added
