"""One 3×3 convolution on the CPU, forward and forward with both gradients, XLA vs PyTorch (oneDNN).

    python -m benchmarks.conv_cpu [--batch 64] [--size 32] [--channels 64] [--repeats 10] [--xla-own-defaults]

Where jka's CPU training step loses to PyTorch's: the same convolution (NHWC in jax, NCHW and
channels_last in PyTorch), its loss ``Σ y²`` and, for the backward, the gradients of the input and the
weights. Each timing is the mean of ``--repeats`` synchronised calls after one warm-up call. jax runs
with jka's default XLA flags (:mod:`jka.xla_flags`: convolutions kept off YNNPACK), or with XLA's own
defaults under ``--xla-own-defaults``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jka import xla_flags


def timed(fn, repeats: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1e3 * (time.perf_counter() - t0) / repeats


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.conv_cpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--xla-own-defaults", action="store_true", help="leave XLA's CPU defaults (YNNPACK convolutions)")
    args = p.parse_args(argv)
    if not args.xla_own_defaults:
        xla_flags.apply()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, args.size, args.size, args.channels)).astype(np.float32)
    w = (0.05 * rng.normal(size=(3, 3, args.channels, args.channels))).astype(np.float32)

    def loss(x, w):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return (y * y).sum()

    fwd, both = jax.jit(loss), jax.jit(jax.grad(loss, argnums=(0, 1)))
    xj, wj = jnp.asarray(x), jnp.asarray(w)
    print(f"jax {jax.__version__} (XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}): forward {timed(lambda: jax.block_until_ready(fwd(xj, wj)), args.repeats):.1f} ms, "
          f"forward + gradients {timed(lambda: jax.block_until_ready(both(xj, wj)), args.repeats):.1f} ms")
    try:
        import torch
    except ImportError:
        print("torch is not installed: no PyTorch rows")
        return 0
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    wt = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous().requires_grad_()
    for layout in ("nchw", "channels_last"):
        xl = (xt.to(memory_format=torch.channels_last) if layout == "channels_last" else xt).requires_grad_()

        def run(backward: bool, xl=xl):
            out = (torch.nn.functional.conv2d(xl, wt, padding=1) ** 2).sum()
            if backward:
                out.backward()
        print(f"torch {torch.__version__} {layout}, {torch.get_num_threads()} threads: forward "
              f"{timed(lambda: run(False), args.repeats):.1f} ms, forward + gradients "
              f"{timed(lambda: run(True), args.repeats):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
