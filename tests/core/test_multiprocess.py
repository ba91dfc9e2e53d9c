"""Two local processes with 4 fake CPU devices each train exactly like one process with 8: a
supervised run through the CLI, and a KD run whose two teachers are trained on the fly (process 0
exports them, both processes load them) and which is interrupted and resumed from a checkpoint."""
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = ["configs/digits/teacher.py", "train.steps=12", "train.progress=False", "train.checkpoint_every=6",
        "model.kwargs={'width': 0.25}", "data.augment.crop_pad=1"]


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env(devices, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JKA_")}
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu", **extra)
    return env


def _two_processes(cmd, tmp_path, timeout=600):
    """Run ``cmd`` as processes 0 and 1 of a 2-process jax.distributed job; fail with its stderr.

    Output goes to files (no pipe can fill up and block a process); if one process fails or hangs,
    the other is killed rather than left waiting at the coordinator."""
    port = _free_port()
    procs, logs = [], []
    for i in range(2):
        log = open(tmp_path / f"process{i}.log", "w+")
        logs.append(log)
        procs.append(subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
                                      env=_env(4, JKA_COORDINATOR_ADDRESS=f"localhost:{port}",
                                               JKA_NUM_PROCESSES="2", JKA_PROCESS_ID=str(i))))
    try:
        for p, log in zip(procs, logs):
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
            log.seek(0)
            assert p.returncode == 0, log.read()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for log in logs:
            log.close()


KD_RUN = """
import json, sys
from jka.train.distributed import maybe_initialize
maybe_initialize()
from jka.train import loop
from tests.helpers import tiny_kd

cfg = tiny_kd(steps=12, teacher_steps=20, checkpoint_every=6, log_every=6)
cfg.train.mesh = dict(data=-1, model=1)
for spec in cfg.teachers:
    spec["config"].train.mesh = dict(data=-1, model=1)
out = loop.train(cfg, sys.argv[1])
print(json.dumps(out))
"""


def test_kd_with_teachers_trained_on_the_fly_two_processes_resumed_equal_one_process(tmp_path):
    code = [sys.executable, "-c", KD_RUN]
    one = subprocess.run(code + [str(tmp_path / "one")], cwd=REPO, env=_env(8, PYTHONPATH=REPO),
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = tmp_path / "two"
    _two_processes(code + [str(two)], tmp_path)
    first = json.load(open(two / "summary.json"))
    # Interrupt after step 6: drop what the last 6 steps wrote, then resume with two processes.
    shutil.rmtree(two / "checkpoints" / "12")
    shutil.rmtree(two / "model")
    os.remove(two / "summary.json")
    _two_processes(code + [str(two)], tmp_path)
    a, b = json.load(open(tmp_path / "one" / "summary.json")), json.load(open(two / "summary.json"))
    assert a["devices"] == b["devices"] == 8
    assert first["eval"] == a["eval"] and b["eval"] == a["eval"], (a["eval"], first["eval"], b["eval"])
    for k in a["train"]:
        if not k.endswith("_per_s"):
            assert b["train"][k] == pytest.approx(a["train"][k], rel=1e-5), k
    for name in ("teacher_a", "teacher_b"):  # exported by process 0, read by both
        ta = json.load(open(tmp_path / "one" / name / "summary.json"))
        tb = json.load(open(two / name / "summary.json"))
        assert ta["eval"] == tb["eval"], name
    assert b["step_compilations"] == 1


def test_two_processes_equal_one_process(tmp_path):
    one = subprocess.run([sys.executable, "-m", "jka", "train", *ARGS, "--workdir", str(tmp_path / "one")],
                         cwd=REPO, env=_env(8), capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    _two_processes([sys.executable, "-m", "jka", "train", *ARGS, "--workdir", str(tmp_path / "two")], tmp_path)
    a = json.load(open(tmp_path / "one" / "summary.json"))
    b = json.load(open(tmp_path / "two" / "summary.json"))
    assert b["devices"] == a["devices"] == 8
    assert a["eval"] == b["eval"]
    for k in a["train"]:
        if k.endswith("_per_s"):
            continue
        assert b["train"][k] == pytest.approx(a["train"][k], rel=1e-5), k
    assert os.path.isdir(tmp_path / "two" / "checkpoints" / "12")
