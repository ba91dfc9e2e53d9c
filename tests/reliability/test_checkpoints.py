"""Damaged checkpoints, runs killed between checkpoints, and diverged runs."""
import glob
import json
import os
import subprocess
import sys

import pytest

from jka.cli import main
from jka.data.core import Batches
from tests.conftest import REPO
from tests.helpers import error_lines

TEACHER = ["digits/teacher", "train.progress=False", "model.kwargs={'width': 0.25}", "data.batch_size=32",
           "train.log_every=3", "train.checkpoint_every=5", "train.eval_every=4", "train.steps=20"]


class _Killed(Exception):
    pass


def _train(workdir, *overrides):
    return main(["train", *TEACHER, *overrides, "--workdir", str(workdir)])


def _killed_at(monkeypatch, workdir, step):
    """A run that dies when batch ``step`` is read (after its checkpoints before it, and after
    writing metrics rows past the last one), as a SIGKILL would leave it."""
    original = Batches.host_batch

    def dies(self, s):
        if s == step:
            raise _Killed()
        return original(self, s)

    monkeypatch.setattr(Batches, "host_batch", dies)
    with pytest.raises(_Killed):
        _train(workdir)
    monkeypatch.setattr(Batches, "host_batch", original)


def _rows(workdir):
    rows = [json.loads(r) for r in open(os.path.join(workdir, "metrics.jsonl"))]
    return [{k: v for k, v in r.items() if not k.endswith(("_per_s", "/mfu"))} for r in rows]  # not the timings


def _same_as(full, cut):
    assert json.load(open(full / "summary.json")) == json.load(open(cut / "summary.json"))
    assert _rows(full) == _rows(cut)  # no step twice; the interval means as if never stopped


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    w = tmp_path_factory.mktemp("full") / "run"
    assert _train(w) == 0
    return w


def test_a_killed_run_resumes_without_repeating_metrics_rows(full, tmp_path, monkeypatch):
    cut = tmp_path / "cut"
    _killed_at(monkeypatch, cut, 14)  # checkpoints 5, 10; rows up to step 12 or so
    assert max(r["step"] for r in _rows(cut)) > 10
    assert _train(cut) == 0
    _same_as(full, cut)


def test_a_run_killed_between_its_final_checkpoint_and_its_export_reruns_to_the_same_summary(full, tmp_path,
                                                                                              monkeypatch):
    from jka.train import loop

    def dies(*args, **kwargs):
        raise _Killed()

    cut = tmp_path / "cut"
    monkeypatch.setattr(loop, "export_model", dies)  # the final checkpoint is on disk, nothing after it
    with pytest.raises(_Killed):
        _train(cut)
    monkeypatch.undo()
    assert (cut / "checkpoints" / "20").is_dir() and not (cut / "summary.json").exists()
    assert _train(cut) == 0
    summary, expected = (json.load(open(w / "summary.json")) for w in (cut, full))
    assert summary.pop("step_compilations") == 0  # the rerun ran no step: nothing was compiled
    expected.pop("step_compilations")
    assert summary["train"] and summary == expected  # the last step's metrics were kept with the checkpoint
    assert _rows(full) == _rows(cut)
    assert open(cut / "model" / "variables.msgpack", "rb").read() == open(full / "model" / "variables.msgpack",
                                                                           "rb").read()


def _damage(checkpoint_dir, how):
    if how == "truncated data":
        files = [f for f in glob.glob(f"{checkpoint_dir}/state/**/d/*", recursive=True) if os.path.isfile(f)]
        assert files
        for f in files:
            os.truncate(f, os.path.getsize(f) // 2)
    else:
        with open(os.path.join(checkpoint_dir, "state", "_METADATA"), "w") as f:
            f.write("{not json")


@pytest.mark.parametrize("how", ["truncated data", "broken metadata"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(full, tmp_path, monkeypatch, capsys, how):
    cut = tmp_path / "cut"
    _killed_at(monkeypatch, cut, 14)
    _damage(cut / "checkpoints" / "10", how)
    capsys.readouterr()
    assert _train(cut) == 0
    err = capsys.readouterr().err
    assert "checkpoint at step 10 in" in err and "is damaged" in err and "resuming from step 5" in err
    assert len(err) < 3000  # a warning line, not a TensorStore traceback
    assert os.path.isdir(cut / "checkpoints.damaged" / "10")  # kept for a look, out of the way
    _same_as(full, cut)


def test_every_checkpoint_damaged_is_one_line(tmp_path, monkeypatch, capsys):
    cut = tmp_path / "cut"
    _killed_at(monkeypatch, cut, 8)  # one checkpoint: step 5
    _damage(cut / "checkpoints" / "5", "truncated data")
    # As a user sees it (a fresh process): one line, none of TensorStore's or asyncio's reports.
    out = subprocess.run([sys.executable, "-m", "jka", "train", *TEACHER, "--workdir", str(cut)], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 2
    err = error_lines(out.stderr)
    assert len(err) == 1 and "no checkpoint in" in err[0] and "reads back (damaged: steps 5" in err[0], out.stderr
    assert os.path.isdir(cut / "checkpoints.damaged" / "5")
    assert _train(cut) == 0  # the rerun starts from step 0


def test_a_diverged_run_exits_3_and_keeps_its_last_good_checkpoint(tmp_path, capsys):
    w = tmp_path / "nan"
    assert _train(w, "optim.lr=1e12", "optim.weight_decay=0.0") == 3
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("jka: diverged:") and "step None" not in err[0], err
    assert ("last good checkpoint (step 5)" in err[0] or "no checkpoint was saved before it" in err[0]
            or "last good checkpoint (step 10)" in err[0] or "last good checkpoint (step 15)" in err[0])
