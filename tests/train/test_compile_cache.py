"""jax's persistent compilation cache is on by default in the workdir's parent: a second run in a
fresh process (a sibling workdir) finds there what the first compiled. The same runs check a run's
progress rows: TFLOP/s = steps/s × the step's FLOPs and MFU = that over the devices' peak, written by
the one writer ``train.writers`` names (CSV)."""
import csv
import json
import os
import subprocess
import sys

import pytest

from jka.train import compile_cache
from tests.conftest import REPO

# One `jka train` in this process: the cache hits jax reports, the loop's FLOPs count next to an
# independent trace of the same step, and a made-up peak for this CPU (whose peak jka does not know).
RUN = """
import json, sys
import jax, jax.monitoring
from jka import cli
from jka.train import flops, loop

hits, counted = [], []
jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else 0)
flops.PEAK_BF16_FLOPS[jax.devices()[0].device_kind.lower()] = 2e9
real = loop.compile_ahead

def spy(step_fn, args):
    counted.append(flops.jaxpr_flops(jax.make_jaxpr(step_fn)(*args).jaxpr))
    compiled, step_flops = real(step_fn, args)
    counted.append(step_flops)
    return compiled, step_flops

loop.compile_ahead = spy
code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "hits": len(hits), "flops": counted, "devices": jax.device_count()}))
"""
TINY = ["train.steps=4", "train.log_every=2", "train.progress=False", "train.mesh.data=1", "data.batch_size=32",
        "model.kwargs={'width': 0.25}", "train.writers=['csv']", "train.checkpoint_every=0"]


def _train(workdir):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "PYTHONPATH": REPO,
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}  # every program is cached, however quick
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", RUN, "train", "digits/teacher", *TINY, "--workdir", str(workdir)],
                         capture_output=True, text=True, cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_run_reads_the_cache_the_first_wrote_and_rows_carry_tflops_and_mfu(tmp_path):
    cache = tmp_path / ".jax_cache"
    first = _train(tmp_path / "a")
    entries = set(os.listdir(cache))
    assert first["code"] == 0 and any(e.startswith("jit_step") for e in entries)
    second = _train(tmp_path / "b")
    # every program found there (the first run found only the ones it compiled twice), nothing written anew
    assert second["hits"] >= len(entries) > first["hits"] and set(os.listdir(cache)) == entries

    independent, per_step = first["flops"]
    assert per_step > 1e6 and per_step == pytest.approx(independent, rel=1e-9)
    rows = {}
    with open(tmp_path / "a" / "metrics.csv") as f:
        for r in csv.DictReader(f):
            rows.setdefault(int(r["step"]), {})[r["key"]] = float(r["value"])
    assert not os.path.exists(tmp_path / "a" / "metrics.jsonl")  # the writers named, and no other
    for step in (2, 4):
        row = rows[step]
        assert row["train/tflop_per_s"] == pytest.approx(row["train/steps_per_s"] * per_step / 1e12, rel=1e-6)
        assert row["train/mfu"] == pytest.approx(row["train/steps_per_s"] * per_step / (2e9 * first["devices"]),
                                                 rel=1e-6)


def test_where_the_cache_goes(monkeypatch):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    assert compile_cache.directory("auto", "/runs/exp1/kd") == "/runs/exp1/.jax_cache"
    assert compile_cache.directory("auto", "/runs/exp1/kd/") == "/runs/exp1/.jax_cache"
    assert compile_cache.directory("auto", "gs://bucket/exp1/kd") is None  # a bucket: only when named
    assert compile_cache.directory("/scratch/cache", "gs://bucket/kd") == "/scratch/cache"
    assert compile_cache.directory("", "/runs/exp1/kd") is None
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/mine")
    assert compile_cache.directory("auto", "/runs/exp1/kd") == "/mine"
