"""Two local processes with 4 fake CPU devices each train exactly like one process with 8."""
import json
import os
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


def test_two_processes_equal_one_process(tmp_path):
    one = subprocess.run([sys.executable, "-m", "jka", "train", *ARGS, "--workdir", str(tmp_path / "one")],
                         cwd=REPO, env=_env(8), capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "jka", "train", *ARGS, "--workdir", str(tmp_path / "two")],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(4, JKA_COORDINATOR_ADDRESS=f"localhost:{port}", JKA_NUM_PROCESSES="2",
                                       JKA_PROCESS_ID=str(i)))
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    a = json.load(open(tmp_path / "one" / "summary.json"))
    b = json.load(open(tmp_path / "two" / "summary.json"))
    assert b["devices"] == a["devices"] == 8
    assert a["eval"] == b["eval"]
    for k in a["train"]:
        if k.endswith("_per_s"):
            continue
        assert b["train"][k] == pytest.approx(a["train"][k], rel=1e-5), k
    assert os.path.isdir(tmp_path / "two" / "checkpoints" / "12")
