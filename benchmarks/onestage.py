"""One-stage vs two-stage adversarial training speed (docs/methods.md, "One-stage adversarial
training"), on the same device.

- DFAD on digits (teacher small_cnn → student small_cnn×0.5, generator): one schedule unit of
  two-stage = 1 generator step + ``kd_steps`` student steps; one-stage = 1 joint step (one
  backward pass through a gradient reversal updates both) + ``kd_steps − 1`` student steps. Both
  make 1 generator and ``kd_steps`` student updates.
- DCGAN on digits (GroupNorm D, non-saturating loss): two-stage = a D step then a G step (G's forward
  pass shared); one-stage = one backward pass with the per-sample scaler γ = −e^{−p}. ``dcgan_32px``
  is the same on random 32×32×3 images, the CIFAR-sized networks (the digits steps are so small that
  on a GPU they measure kernel launches: one-stage was 0.76× there on an H100).

Timed with ``throughput.time_step`` (compile and warm-up excluded; median of steps synchronised one
by one). Prints ms/step, img/s and the speed-up
(two-stage time / one-stage time) and writes JSON with ``--json``.

    python -m benchmarks.onestage --steps 20 --batch 64 --json benchmarks/results/onestage_cpu.json
"""
from __future__ import annotations

import argparse
import platform

import jax
import jax.numpy as jnp

from benchmarks.throughput import time_step, write_json


def bench_dfad(batch: int, kd_steps: int, steps: int, warmup: int):
    from jka import methods, models, run
    from jka.train.teachers import Teacher

    module = models.create("small_cnn", 10)
    variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)), train=False)
    teacher = Teacher("small_cnn", module, variables, list(range(10)))
    out = {}
    for one_stage in (False, True):
        cfg = run.load("datafree/digits:method=dfad", ["train.steps=1000", f"dfad.kd_steps={kd_steps}",
                                                       "dfad.g_steps=1", f"dfad.one_stage={one_stage}",
                                                       f"data.batch_size={batch}"])
        program = methods.get("dfad").program(cfg, [teacher], None)
        state = program.init(jax.random.PRNGKey(1), {})
        fn = jax.jit(program.step, donate_argnums=0)
        out["one_stage" if one_stage else "two_stage"] = dict(
            time_step(fn, state, ([variables], {}), kd_steps * batch, steps, warmup),
            unit=f"1 generator + {kd_steps} student updates")
    out["speedup"] = out["two_stage"]["ms_per_step"] / out["one_stage"]["ms_per_step"]
    return out


def bench_gan(batch: int, steps: int, warmup: int, size: int | None = None):
    """DCGAN on the digits (8×8×1), or with ``size`` on random 3-channel size×size images (the
    CIFAR-sized generator and discriminator; speed does not depend on the data)."""
    from jka.configs.common import config
    from jka.data import load_split
    from jka.methods.datafree import gan
    from jka.settings import read

    if size:
        data = jax.random.uniform(jax.random.PRNGKey(0), (max(4 * batch, 1024), size, size, 3))
    else:
        data = jnp.asarray(load_split(config().data, "train").images)
    out = {}
    for one_stage in (False, True):
        s = read(gan.Settings, dict(loss="asymmetric", one_stage=one_stage, d_norm="group"), "gan")
        tr = gan.game(s, data.shape[1:], batch, 1000)
        fn = jax.jit(tr.step, donate_argnums=0)
        out["one_stage" if one_stage else "two_stage"] = dict(
            time_step(fn, tr.init(jax.random.PRNGKey(0)), (data[:batch],), batch, steps, warmup),
            unit="1 generator + 1 discriminator update")
    out["speedup"] = out["two_stage"]["ms_per_step"] / out["one_stage"]["ms_per_step"]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="timed calls per case")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--kd-steps", type=int, default=5)
    p.add_argument("--only", choices=["dfad", "gan", "gan32"], default=None)
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args(argv)
    results = {"benchmark": "onestage", "device": str(jax.devices()[0]), "backend": jax.default_backend(),
               "device_count": jax.device_count(), "host": platform.node(), "jax": jax.__version__,
               "batch": a.batch, "steps": a.steps, "cases": {}}
    if a.only in (None, "dfad"):
        results["cases"]["dfad_digits"] = bench_dfad(a.batch, a.kd_steps, a.steps, a.warmup)
    if a.only in (None, "gan"):
        results["cases"]["dcgan_digits"] = bench_gan(a.batch, a.steps, a.warmup)
    if a.only in (None, "gan32"):
        results["cases"]["dcgan_32px"] = bench_gan(a.batch, a.steps, a.warmup, size=32)
    print(f"device: {results['device']} ({results['backend']}), batch {a.batch}")
    print(f"{'case':14s} {'mode':10s} {'ms/step':>10s} {'img/s':>10s}")
    for case, r in results["cases"].items():
        for mode in ("two_stage", "one_stage"):
            print(f"{case:14s} {mode:10s} {r[mode]['ms_per_step']:10.2f} {r[mode]['img_per_s']:10.1f}")
        print(f"{case:14s} speed-up (two-stage time / one-stage time): {r['speedup']:.2f}x")
    if a.json:
        write_json(results, a.json)
    return results


if __name__ == "__main__":
    main()
