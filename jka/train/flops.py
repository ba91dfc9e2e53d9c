"""FLOPs of a step, counted from its jaxpr: every convolution and matrix product, forward and backward.

XLA's cost analysis counts a GPU's convolutions (cuDNN custom calls) as zero FLOPs (28 GFLOP instead
of ~5.7 TFLOP for a KD ResNet step at batch 1024); the jaxpr, and so this count, is the same on every
backend.

Counted, as multiply-adds × 2:
- ``conv_general_dilated``: 2 · |output| · (kernel taps) · (input features per group) / (input
  dilation), with the kernel's taps and input features read from ``rhs``. This holds for the
  transposed convolutions of the backward pass too; the division leaves out the multiplies by the
  zeros of a dilated input (a strided convolution's input gradient), as PyTorch's count does.
- ``dot_general``: 2 · |output| · (size of the contracted dimensions).
Control flow: ``scan`` bodies count ``length`` times, ``cond`` its most expensive branch, a
``while`` body once (its trip count is not known statically). Elementwise work is not counted:
MFU is the share of the accelerator's matrix-unit peak that the step achieves.
"""
from __future__ import annotations

import math

import jax


def _subjaxprs(value):
    """Jaxprs held in an equation parameter (a Jaxpr, a ClosedJaxpr, or a tuple of them)."""
    if hasattr(value, "eqns"):
        return [value]
    if hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        return [value.jaxpr]
    if isinstance(value, (tuple, list)):
        return [j for v in value for j in _subjaxprs(v)]
    return []


def _conv_flops(eqn) -> float:
    out = eqn.outvars[0].aval.shape
    rhs = eqn.invars[1].aval.shape
    rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out feature, in feature, *spatial)
    taps = math.prod(rhs[d] for d in rhs_spec[2:])
    # a dilated input (a strided convolution's input gradient): 1 in prod(lhs_dilation) taps meets a value
    zeros = math.prod(eqn.params.get("lhs_dilation") or (1,))
    return 2.0 * math.prod(out) * taps * rhs[rhs_spec[1]] / zeros


def _dot_flops(eqn) -> float:
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    return 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)


def jaxpr_flops(jaxpr) -> float:
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "cond":
            total += max(jaxpr_flops(b) for b in _subjaxprs(eqn.params["branches"]))
        else:
            inner = sum(jaxpr_flops(j) for v in eqn.params.values() for j in _subjaxprs(v))
            total += inner * (eqn.params.get("length", 1) if name == "scan" else 1)
    return total


# Dense bf16 peak of one device (FLOP/s, the vendors' data sheets), by jax's device_kind in lower case:
# what MFU is reported against (a float32 run too: the matrix units' peak is the ceiling either way).
PEAK_BF16_FLOPS = {"nvidia h100 80gb hbm3": 989e12, "nvidia h200": 989e12, "nvidia a100-sxm4-80gb": 312e12,
                   "nvidia a100-sxm4-40gb": 312e12, "tpu v4": 275e12, "tpu v5 lite": 197e12, "tpu v5p": 459e12,
                   "tpu v5": 459e12, "tpu v6 lite": 918e12}


def peak_flops(device=None) -> float | None:
    """The dense bf16 peak of ``device`` (default: the first device), None where it is not known (CPUs)."""
    device = jax.devices()[0] if device is None else device
    return PEAK_BF16_FLOPS.get((getattr(device, "device_kind", "") or "").lower())


def step_flops(fn, *args) -> float:
    """FLOPs of one call ``fn(*args)`` (``fn`` may be jitted; nothing is run or compiled)."""
    return jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)
