"""One run per workdir, bound to its config: locks, config.json, changed configs, extended runs,
unwritable paths, and `jka eval` from the recorded config."""
import json
import os
import socket
import subprocess
import sys

import pytest

from jka.cli import main
from tests.helpers import error_lines

TEACHER = ["digits/teacher", "train.progress=False", "model.kwargs={'width': 0.25}", "data.batch_size=32",
           "train.log_every=5", "train.checkpoint_every=5"]


def _train(workdir, *overrides, steps=10, extra=()):
    return main(["train", *TEACHER, f"train.steps={steps}", *overrides, "--workdir", str(workdir), *extra])


def _one_error(capsys, needle):
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("jka: error:") and needle in err[0], err
    return err[0]


def _files(workdir):
    """Every file of a workdir with its bytes (to show that nothing changed)."""
    out = {}
    for root, _, names in os.walk(workdir):
        for n in names:
            p = os.path.join(root, n)
            out[os.path.relpath(p, workdir)] = open(p, "rb").read()
    return out


def test_config_json_is_written_and_eval_reads_it(tmp_path, capsys):
    w = tmp_path / "run"
    assert _train(w, "seed=3") == 0
    saved = json.load(open(w / "config.json"))
    assert saved["config"]["seed"] == 3 and saved["config"]["train"]["steps"] == 10
    assert saved["source"].startswith("digits/teacher")
    trained = json.loads(capsys.readouterr().out)
    assert main(["eval", "--workdir", str(w)]) == 0  # no config retyped
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["step"] == 10 and evaluated["eval"] == trained["eval"]


def test_eval_of_a_missing_workdir_creates_nothing(tmp_path, capsys):
    assert main(["eval", "--workdir", str(tmp_path / "nothing")]) == 2
    _one_error(capsys, "does not exist")
    assert not (tmp_path / "nothing").exists()


def test_a_rerun_with_another_config_is_refused_and_changes_nothing(tmp_path, capsys):
    w = tmp_path / "run"
    assert _train(w) == 0
    before = _files(w)
    for change, key in [("seed=1", "seed"), ("optim.lr=0.1", "optim.lr")]:
        assert _train(w, change) == 2
        line = _one_error(capsys, f"holds a run of another config: {key} was")
        assert f"--allow-changed {key}" in line
    assert _train(w, steps=5) == 2  # fewer steps
    _one_error(capsys, "train.steps was 10, now 5")
    assert _files(w) == before
    # How the run is watched may change freely.
    assert _train(w, "train.log_every=2", "train.eval_every=3") == 0


def test_allow_changed_extends_a_finished_run(tmp_path, capsys):
    w = tmp_path / "run"
    assert _train(w, steps=10) == 0
    assert _train(w, steps=20, extra=["--allow-changed", "train.steps"]) == 0
    summary = json.load(open(w / "summary.json"))
    assert summary["step"] == 20
    steps = [json.loads(r)["step"] for r in open(w / "metrics.jsonl") if "train/loss" in r]
    assert steps == [5, 10, 15, 20]  # none twice
    assert json.load(open(w / "config.json"))["config"]["train"]["steps"] == 20
    # Going back below the checkpoint is refused even when allowed.
    assert _train(w, steps=15, extra=["--allow-changed", "train.steps"]) == 2
    _one_error(capsys, "holds a checkpoint at step 20, beyond train.steps=15")


def test_a_changed_model_with_allow_changed_names_the_first_differing_key(tmp_path, capsys):
    w = tmp_path / "run"
    assert _train(w, "train.checkpoint_every=5", steps=10) == 0
    (w / "summary.json").unlink()  # as if it had stopped at its checkpoint
    wider = ["model.kwargs={'width': 0.5}"]
    assert main(["train", *TEACHER, "train.steps=10", *wider, "--workdir", str(w),
                 "--allow-changed", "model.kwargs"]) == 2
    line = _one_error(capsys, "is of another state: ")
    assert "has shape (8,) but this config's state needs (16,)" in line and len(line) < 600
    # The failed changed run left the workdir bound to the config of its checkpoint.
    assert json.load(open(w / "config.json"))["config"]["model"]["kwargs"] == {"width": 0.25}


def _lock(w, **holder):
    os.makedirs(w, exist_ok=True)
    with open(w / "jka.lock", "w") as f:
        json.dump({"host": socket.gethostname(), "started": "2026-01-01T00:00:00", **holder}, f)


def test_a_second_run_in_a_locked_workdir_is_refused(tmp_path, capsys):
    w = tmp_path / "run"
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(w, pid=alive.pid)
        assert _train(w) == 2
        line = _one_error(capsys, "is in use by another jka run")
        assert f"pid {alive.pid}" in line and socket.gethostname() in line
        assert not (w / "checkpoints").exists()
        _lock(w, pid=1, host="another-host")  # a process elsewhere cannot be checked: refused
        assert _train(w) == 2
        _one_error(capsys, "host another-host")
    finally:
        alive.kill()
        alive.wait()


def test_a_stale_lock_is_taken_over_and_released(tmp_path, capsys, monkeypatch):
    w = tmp_path / "run"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _lock(w, pid=gone.pid)
    assert _train(w) == 0
    assert "taking over the lock of a run that is no longer running" in capsys.readouterr().err
    assert not (w / "jka.lock").exists()
    # A requeued SLURM job takes over the lock its earlier run left, on whatever node it lands.
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    _lock(tmp_path / "slurm", pid=1, host="node-17", slurm_job="4242")
    assert _train(tmp_path / "slurm") == 0


def test_workdir_that_is_a_file_or_unwritable_is_refused_before_any_work(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert _train(f) == 2
    _one_error(capsys, "is a file, not a directory")
    assert _train("/proc/self/jka_run") == 2  # not even root can write there
    _one_error(capsys, "cannot write to --workdir")
    if os.geteuid() != 0:  # root writes into read-only directories
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        assert _train(ro) == 2
        _one_error(capsys, "cannot write to --workdir")


def test_demo_output_path_is_checked_before_the_demo_runs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "missing_dir" / "r.json"), "--workdir", str(tmp_path / "d")]) == 2
    _one_error(capsys, "does not exist; create it first")
    assert not (tmp_path / "d").exists()
    assert main(["demo", "--out", str(tmp_path), "--workdir", str(tmp_path / "d")]) == 2
    _one_error(capsys, "is a directory")


def test_a_redirected_run_logs_a_line_per_log_every(tmp_path):
    out = subprocess.run([sys.executable, "-m", "jka", "train", *TEACHER, "train.steps=200", "train.log_every=20",
                          "--workdir", str(tmp_path / "run")], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if " supervised step " in ln]
    assert [int(ln.split(" step ")[1].split("/")[0]) for ln in lines[:-1]] == list(range(20, 201, 20))
    assert "eval" in lines[-1]
    for ln in lines[1:-1]:  # every interval after the first step: mean loss, lr, rates, ETA
        assert "loss " in ln and " lr " in ln and "steps/s" in ln and "img/s" in ln and "ETA" in ln, ln
    assert "first step done in" in out.stderr and "1 cpu device(s), mesh" in out.stderr
    assert "config digits/teacher" in out.stderr
    rows = [json.loads(r) for r in open(tmp_path / "run" / "metrics.jsonl") if "train/loss" in r]
    assert all("train/lr" in r for r in rows) and rows[-1]["train/lr"] == pytest.approx(0.0, abs=1e-9)


def test_bucket_workdir_without_its_file_system_package_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if not installed: importing it fails
    assert _train("gs://some-bucket/run") == 2
    _one_error(capsys, "writing to gs:// needs gcsfs; pip install 'jka[gcs]'")
    assert not os.path.exists("gs:")


def test_a_config_json_of_a_run_that_never_trained_does_not_bind_the_workdir(tmp_path, capsys):
    """A run refused (or stopped) before its first step leaves only config.json: the corrected command
    trains there; once a step is checkpointed the config binds the workdir."""
    done, fresh = tmp_path / "done", tmp_path / "fresh"
    assert _train(done, "seed=1") == 0
    fresh.mkdir()
    (fresh / "config.json").write_bytes((done / "config.json").read_bytes())  # seed=1, nothing trained
    assert _train(fresh, "seed=2") == 0
    assert json.load(open(fresh / "config.json"))["config"]["seed"] == 2
    capsys.readouterr()
    assert _train(fresh, "seed=3") == 2  # now it has trained: bound
    _one_error(capsys, "holds a run of another config: seed was 2, now 3")


def test_a_foreign_config_json_is_one_line_for_train_and_eval(tmp_path, capsys):
    w = tmp_path / "foreign"
    w.mkdir()
    (w / "config.json").write_text(json.dumps({"name": "not jka", "lr": 0.1}))
    before = _files(w)
    assert _train(w) == 2
    _one_error(capsys, "is not the config.json of a jka run")
    assert main(["eval", "--workdir", str(w)]) == 2
    _one_error(capsys, "is not the config.json of a jka run")
    assert _files(w) == before


def test_an_empty_workdir_path_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in (["train", *TEACHER, "--workdir", ""], ["train", *TEACHER, "--workdir", "  "],
                 ["eval", "--workdir", ""], ["eval", "digits/teacher", "--workdir", ""]):
        assert main(args) == 2, args
        _one_error(capsys, "--workdir is empty")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad, needle", [
    ("data.classes=[0,1,10]", "data.classes"),
    ("data.batch_size=4000", "batch"),
    ("train.init_from=/no/such/run", "no exported model at '/no/such/run'"),
], ids=["a class the data lacks", "a batch larger than the data", "a missing init_from"])
def test_a_refused_run_leaves_the_workdir_as_it_found_it(tmp_path, capsys, bad, needle):
    """Refusals that need the data or other files (found after the workdir was locked and bound): a
    new workdir is not left behind, an existing one is byte-identical, and the corrected command trains."""
    new, kept = tmp_path / "new", tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    before = _files(kept)
    for w in (new, kept):
        assert _train(w, bad) == 2
        _one_error(capsys, needle)
    assert not new.exists() and _files(kept) == before
    if bad.startswith("data.classes"):  # the corrected command (one case: each costs a run)
        assert _train(kept, "data.classes=[0,1,2]") == 0
