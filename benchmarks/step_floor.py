"""The fewest bytes a KD step can move, counted by hand from its convolutions, beside what XLA reaches.

    python -m benchmarks.step_floor [--teacher cifar_resnet34] [--student cifar_resnet18]
        [--batch 1024] [--devices 4] [--compiled benchmarks/results/compiled_cost_v5e_2x2_after.json]

A memory-bound step is judged by its bytes accessed. This counts, per device, the traffic of an ideal
implementation of the KD step in which every elementwise operation (BatchNorm apply, ReLU, residual
add, bias) is fused into a convolution's prologue or epilogue, and each activation crosses memory
only where a convolution must read or write it (bf16, weights ignored: they are a few MB):

- frozen teacher, BatchNorm folded, inference: each conv reads its input ``X`` and writes ``Y``:
  ``X + Y``;
- student forward: each conv reads ``X`` (the previous BatchNorm and ReLU applied on the way in) and
  writes its pre-BatchNorm output ``Y`` once, its batch statistics summed in the epilogue: ``X + Y``;
- student backward: the BatchNorm's reduction reads the incoming gradient and ``Y`` (``2Y``), then one
  kernel computes the input gradient and the weight gradient, reading both again and ``X``
  and writing ``dX`` (``2Y + 2X``).

So ``X + Y`` per teacher conv and ``3X + 5Y`` per student conv. The residual add's extra read and
the loss are left out: this is a floor, not a model of any real kernel schedule. The shapes come
from the traced networks (``jax.make_jaxpr``), not from a table.
"""
from __future__ import annotations

import argparse
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.throughput import write_json
from jka import models
from jka.check.topology import fusions


def conv_shapes(arch: str, num_classes: int, batch: int, image: int, train: bool) -> list[tuple[int, int]]:
    """(input elements, output elements) of every convolution of ``arch``'s forward pass."""
    module = models.create(arch, num_classes, dtype=jnp.bfloat16)
    x = jax.ShapeDtypeStruct((batch, image, image, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x, train=False), x)
    fn = (lambda v, x: module.apply(v, x, train=True, mutable=["batch_stats"])) if train else \
        (lambda v, x: module.apply(v, x, train=False))
    jaxpr = jax.make_jaxpr(fn)(variables, x)
    out = []

    def walk(jx):
        for eqn in jx.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                out.append((int(np.prod(eqn.invars[0].aval.shape)), int(np.prod(eqn.outvars[0].aval.shape))))
            for param in eqn.params.values():  # pjit, custom_vjp and remat bodies
                inner = getattr(param, "jaxpr", param)
                if hasattr(inner, "eqns"):
                    walk(inner)
    walk(jaxpr.jaxpr)
    return out


def floor_bytes(teacher: list, student: list, itemsize: int = 2) -> dict:
    t = sum(x + y for x, y in teacher) * itemsize
    s = sum(3 * x + 5 * y for x, y in student) * itemsize
    return {"teacher_bytes": t, "student_bytes": s, "total_bytes": t + s,
            "teacher_convs": len(teacher), "student_convs": len(student)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.step_floor", description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", default="cifar_resnet34")
    p.add_argument("--student", default="cifar_resnet18")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=1024, help="global batch")
    p.add_argument("--devices", type=int, default=4, help="devices the batch is split over (v5e:2x2: 4)")
    p.add_argument("--image", type=int, default=32)
    p.add_argument("--compiled", nargs="*", default=[], help="compiled_cost JSON files to compare with (kd row)")
    p.add_argument("--hlo", nargs="*", default=[], metavar="LABEL=FILE",
                   help="compiled KD steps' HLO text (compiled_cost --hlo-dir): their kernels' one-pass bytes")
    p.add_argument("--json", default=None, help="write the floor here")
    args = p.parse_args(argv)
    local = args.batch // args.devices
    row = floor_bytes(conv_shapes(args.teacher, args.classes, local, args.image, False),
                      conv_shapes(args.student, args.classes, local, args.image, True))
    row.update(teacher=args.teacher, student=args.student, batch=args.batch, devices=args.devices)
    print(f"hand floor per device: {row['total_bytes'] / 1e9:.2f} GB (teacher {row['teacher_bytes'] / 1e9:.2f}, "
          f"student {row['student_bytes'] / 1e9:.2f}; {row['teacher_convs']} + {row['student_convs']} convs)")
    for path in args.compiled:
        kd = json.load(open(path))["families"].get("kd")
        if kd:
            xla = kd["bytes_accessed_per_device"]
            row.setdefault("xla_bytes_accessed", {})[path] = xla
            print(f"{path}: XLA {xla / 1e9:.2f} GB per device = {xla / row['total_bytes']:.2f}x the floor")
    for item in args.hlo:
        label, path = item.split("=", 1)
        kernels = fusions(open(path).read())
        one_pass = sum(k["bytes"] for k in kernels)
        row.setdefault("compiled", {})[label] = {"kernels": len(kernels), "one_pass_bytes": one_pass}
        print(f"{label}: {len(kernels)} kernels, {one_pass / 1e9:.2f} GB if each reads its operands once = "
              f"{one_pass / row['total_bytes']:.2f}x the floor")
    if args.json:
        write_json(row, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
