"""The metric writers behind ``train.writers``: JSONL and CSV hold the same numbers (and drop the rows
past a resumed run's checkpoint), a writer that is unknown or not installed is refused in one line
before any work, and wandb (when installed) writes an offline run's files. (A run with
``train.writers=['csv']`` is in test_compile_cache.py.)"""
import csv
import glob
import json
import os
import sys
from unittest import mock

import pytest

from jka import run
from jka.errors import ConfigError
from jka.train.metrics import CsvWriter, JsonlWriter, MetricWriter


def _csv(path) -> dict:
    """metrics.csv pivoted back into ``{step: {key: value}}``."""
    rows = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            rows.setdefault(int(r["step"]), {})[r["key"]] = float(r["value"])
    return rows


def _jsonl_numbers(path) -> dict:
    rows = {}
    for line in open(path):
        row = json.loads(line)
        rows.setdefault(row.pop("step"), {}).update({k: v for k, v in row.items() if isinstance(v, (int, float))})
    return rows


def test_jsonl_and_csv_hold_the_same_numbers_and_a_resume_drops_the_rows_past_its_checkpoint(tmp_path):
    w = MetricWriter(str(tmp_path), names=["jsonl", "csv"])
    assert [type(x) for x in w.writers] == [JsonlWriter, CsvWriter]
    w.write(10, "train", {"loss": 1.25, "lr": 0.1, "per_class": [0.5, 0.25], "note": "text"})
    w.write(20, "train", {"loss": 0.1 + 0.2, "lr": 0.05})
    w.write(20, "eval", {"accuracy": 0.75})
    w.close()
    jsonl, table = _jsonl_numbers(tmp_path / "metrics.jsonl"), _csv(tmp_path / "metrics.csv")
    assert table == jsonl == {10: {"train/loss": 1.25, "train/lr": 0.1},
                              20: {"train/loss": 0.1 + 0.2, "train/lr": 0.05, "eval/accuracy": 0.75}}
    assert json.loads(open(tmp_path / "metrics.jsonl").readline())["train/per_class"] == [0.5, 0.25]
    resumed = MetricWriter(str(tmp_path), names=["jsonl", "csv"], after=10)  # the checkpoint is at step 10
    resumed.write(20, "train", {"loss": 0.5})
    resumed.close()
    expected = {10: {"train/loss": 1.25, "train/lr": 0.1}, 20: {"train/loss": 0.5}}
    assert _csv(tmp_path / "metrics.csv") == _jsonl_numbers(tmp_path / "metrics.jsonl") == expected


@pytest.mark.parametrize("writers, needle", [
    (["jsonl", "mlflow"], "train.writers=['jsonl', 'mlflow'] is not valid: it must be None"),
    (["wandb"], "train.writers names 'wandb', which needs wandb (not installed): pip install 'jka[wandb]'"),
    (["tensorboard"], "needs tensorboardX (not installed): pip install 'jka[tensorboard]'"),
])
def test_an_unknown_or_missing_writer_is_one_line(writers, needle):
    cfg = run.load("digits/teacher", [f"train.writers={writers!r}"])
    with mock.patch.dict(sys.modules, {"wandb": None, "tensorboardX": None}):  # as if not installed
        with pytest.raises(ConfigError) as err:
            run.validate(cfg)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_run_with_the_wandb_writer_writes_an_offline_run_in_the_workdir(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is an optional writer (pip install 'jka[wandb]')")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    w = tmp_path / "w"
    cfg = run.load("digits/teacher", ["train.steps=4", "train.log_every=2", "train.progress=False",
                                      "model.kwargs={'width': 0.25}", "train.writers=['jsonl', 'wandb']"])
    run.train(cfg, str(w))
    (run_dir,) = glob.glob(str(w / "wandb" / "offline-run-*"))
    assert glob.glob(os.path.join(run_dir, "*.wandb"))
    assert [json.loads(r)["step"] for r in open(w / "metrics.jsonl")] == [2, 4, 4]  # jsonl alongside
