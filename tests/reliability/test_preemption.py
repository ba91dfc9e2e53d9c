"""SIGTERM (SLURM, TPU preemption) or Ctrl-C at a random step: the run saves a checkpoint at the next
step boundary, exits with code 75 and one line, and the rerun ends exactly as an uninterrupted run
(summary, exported model bytes, every metrics row but the timings). With two processes the signal
reaches one of them; both stop at the same step."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.train.test_multiprocess import _env, start_two, wait_all

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = ["digits/teacher", "train.progress=False", "model.kwargs={'width': 0.25}", "data.batch_size=32",
        "train.log_every=10", "train.eval_every=50"]


def _cli(workdir, steps, **env):
    return [sys.executable, "-m", "jka", "train", *ARGS, f"train.steps={steps}", "--workdir", str(workdir)]


def _start(cmd, env, log):
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)


def _wait_for(path, text, proc, timeout=300):
    """Wait until the log at ``path`` contains ``text`` (the run is past compilation)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if text in open(path).read():
            return
        assert proc.poll() is None, open(path).read()[-3000:]
        time.sleep(0.01)
    raise AssertionError(f"no {text!r} in {path} after {timeout} s")


def _rows(workdir):
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return [{k: v for k, v in r.items() if not k.endswith(("_per_s", "/mfu"))} for r in rows]  # not the timings


def _same_run(a, b):
    sa, sb = (json.load(open(os.path.join(d, "summary.json"))) for d in (a, b))
    ra, rb = _rows(a), _rows(b)
    assert [r["step"] for r in ra] == [r["step"] for r in rb]  # no step twice, none missing
    assert sa == sb
    assert ra == rb
    for name in ("variables.msgpack", "model.json"):
        assert open(os.path.join(a, "model", name), "rb").read() == open(os.path.join(b, "model", name), "rb").read()


def _stopped_step(workdir):
    steps = [int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit()]
    return max(steps)


def _catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a handler installed for SIGTERM (Linux: /proc's SigCgt mask)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the signal mask from /proc (Linux)")
def test_sigterm_before_the_run_starts_exits_75_and_the_rerun_trains(tmp_path):
    """A SIGTERM while jka still imports jax (SLURM stopping a job that has just started) used to end
    in 143, which the sbatch script does not requeue."""
    log_path, work = tmp_path / "run.log", tmp_path / "run"
    with open(log_path, "w") as log:
        proc = _start(_cli(work, 20), _env(1), log)
        t0 = time.time()
        while not _catches_sigterm(proc.pid):
            assert proc.poll() is None and time.time() - t0 < 60, open(log_path).read()[-3000:]
            time.sleep(0.001)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=300)
    lines = open(log_path).read().splitlines()
    assert rc == 75, (rc, lines[-20:])
    assert [ln for ln in lines if ln.startswith("jka:")] == [
        "jka: stopped by SIGTERM before training started; run the same command again"], lines[-20:]
    assert not (work / "jka.lock").exists()
    again = subprocess.run(_cli(work, 20), cwd=REPO, env=_env(1), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.load(open(work / "summary.json"))["step"] == 20


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_at_a_random_step_then_rerun_equals_uninterrupted(tmp_path, sig):
    steps, env = 600, _env(1)
    full = subprocess.run(_cli(tmp_path / "full", steps), cwd=REPO, env=env, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-3000:]

    at = 10 * random.randint(1, 30)  # signal once step `at` is logged: the run stops a few steps later
    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log:
        proc = _start(_cli(tmp_path / "cut", steps), env, log)
        _wait_for(log_path, f"step {at}/{steps}", proc)
        proc.send_signal(sig)
        rc = proc.wait(timeout=300)
    err = [ln for ln in open(log_path).read().splitlines() if ln.startswith("jka:")]
    assert rc == 75, (rc, open(log_path).read()[-3000:])
    stopped = _stopped_step(tmp_path / "cut")
    assert at <= stopped < steps, (at, stopped)
    assert err == [f"jka: stopped by {sig.name} at step {stopped} of {steps}; the checkpoint is saved in "
                   f"{tmp_path / 'cut' / 'checkpoints'}: rerun the same command to resume"]
    assert not (tmp_path / "cut" / "jka.lock").exists()

    again = subprocess.run(_cli(tmp_path / "cut", steps), cwd=REPO, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"(resumed at step {stopped})" in again.stderr
    _same_run(tmp_path / "full", tmp_path / "cut")


def test_sigterm_to_one_of_two_processes_stops_both_at_one_step_and_resumes(tmp_path):
    steps = 60
    assert wait_all(*start_two(_cli(tmp_path / "full", steps), tmp_path, "full")) == [0, 0]

    procs, logs = start_two(_cli(tmp_path / "cut", steps), tmp_path, "cut")
    try:
        _wait_for(tmp_path / "cut0.log", f"step {10 * random.randint(1, 3)}/{steps}", procs[0])
        procs[1].send_signal(signal.SIGTERM)  # a preemption notice to one host only
    finally:
        codes = wait_all(procs, logs)
    texts = [open(tmp_path / f"cut{i}.log").read() for i in range(2)]
    assert codes == [75, 75], (codes, texts[0][-2000:], texts[1][-2000:])
    stopped = _stopped_step(tmp_path / "cut")
    assert 10 <= stopped < steps
    for text in texts:  # both processes stopped at the same step
        assert f"at step {stopped} of {steps}" in text

    assert wait_all(*start_two(_cli(tmp_path / "cut", steps), tmp_path, "cut")) == [0, 0], \
        open(tmp_path / "cut0.log").read()[-3000:]
    _same_run(tmp_path / "full", tmp_path / "cut")
