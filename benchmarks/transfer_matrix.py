"""Time a 10-model attribution-distance matrix (and DEPARA graphs) on 500 probe images.

    python benchmarks/transfer_matrix.py [--models 10] [--probe 500] [--arch small_cnn] [--out FILE]

The models are freshly initialised small_cnn networks (timing does not depend on training); the
probe images are the digits. Reports the first call (compilation included) and a warm repeat:
attribution maps of every model (vmap + jit, sharded over all devices), the distance matrix, and
the DEPARA similarity matrix (graph edges + Spearman). CPU numbers are in benchmarks/results/.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp

from benchmarks.throughput import write_json
from jka import models
from jka.transfer.attribution import ZooModel, attribution_maps, feature_vectors
from jka.transfer.depara import Graph, edge_weights, similarity_matrix
from jka.transfer.distance import distance_matrix
from jka.transfer.zoo import load_probe


def make_zoo(n: int, arch: str, image_shape):
    zoo = []
    for i in range(n):
        module = models.create(arch, 10, width=[0.5, 1.0][i % 2]) if arch == "small_cnn" else models.create(arch, 10)
        v = module.init(jax.random.PRNGKey(i), jnp.zeros((1, *image_shape)))
        zoo.append(ZooModel(f"m{i}", arch, module, {k: v[k] for k in ("params", "batch_stats")},
                            (0.3,), (0.38,), tuple(image_shape)))
    return zoo


def timed(zoo, probe, layer):
    t0 = time.perf_counter()
    maps = {m.name: attribution_maps(m, probe, layer) for m in zoo}
    t1 = time.perf_counter()
    _, d = distance_matrix(maps)
    t2 = time.perf_counter()
    graphs = {m.name: Graph(maps[m.name], edge_weights(feature_vectors(m, probe, layer))) for m in zoo}
    _, s = similarity_matrix(graphs, 1.0)
    t3 = time.perf_counter()
    return {"attribution_maps_s": t1 - t0, "distance_matrix_s": t2 - t1, "depara_matrix_s": t3 - t2,
            "total_distance_s": t2 - t0, "total_s": t3 - t0}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=10)
    p.add_argument("--probe", type=int, default=500)
    p.add_argument("--arch", default="small_cnn")
    p.add_argument("--layer", default="pooled")
    p.add_argument("--out")
    a = p.parse_args(argv)
    probe = load_probe("digits", a.probe)
    zoo = make_zoo(a.models, a.arch, probe.shape[1:])
    first = timed(zoo, probe, a.layer)
    warm = timed(zoo, probe, a.layer)
    res = {"models": a.models, "probe_images": len(probe), "arch": a.arch, "layer": a.layer,
           "devices": [str(d) for d in jax.devices()], "backend": jax.default_backend(),
           "machine": platform.processor() or platform.machine(), "first_call": first, "warm": warm}
    print(json.dumps(res, indent=2))
    if a.out:
        write_json(res, a.out)
    return res


if __name__ == "__main__":
    main()
