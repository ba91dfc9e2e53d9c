"""Config loading, overrides, and the CLI's one-line errors with exit code 2."""
import json
import os
import subprocess
import sys

import pytest

from jka import config as config_lib
from jka.cli import main
from jka.errors import ConfigError
from tests.helpers import error_lines

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEACHER = os.path.join(REPO, "configs", "digits", "teacher.py")


def test_overrides_parse_and_keep_types():
    cfg = config_lib.load(TEACHER, ["train.steps=7", "optim.lr=1", "data.classes=[1,2]", "optim.name=adam"])
    assert cfg.train.steps == 7 and cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert list(cfg.data.classes) == [1, 2] and cfg.optim.name == "adam"


@pytest.mark.parametrize("args, needle", [
    (["train", "configs/nope.py", "--workdir", "w"], "does not exist"),
    (["train", TEACHER, "train.nope=1", "--workdir", "w"], "valid keys here: checkpoint_every"),
    (["train", TEACHER, "model.name=resnet9000", "--workdir", "w"], "unknown model 'resnet9000'; valid choices:"),
    (["train", TEACHER, "algorithm=magic", "--workdir", "w"], "unknown algorithm 'magic'"),
    (["train", TEACHER, "optim.name=lion", "--workdir", "w"], "unknown optimizer 'lion'"),
    (["train", TEACHER, "data.batch_size=5000", "--workdir", "w"], "larger than the dataset"),
    (["train", TEACHER, "--workdir", "ftp://host/run"], "not ftp://"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, args, needle):
    args = [a if a != "w" else str(tmp_path / "w") for a in args]
    assert main(args) == 2
    assert not os.path.exists("ftp:")  # a refused URL workdir leaves no local directory behind
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and needle in err[0] and err[0].startswith("jka: error:"), err


def test_missing_teacher_is_a_clear_error(tmp_path, capsys):
    cfg = os.path.join(REPO, "configs", "cifar", "kd.py")
    assert main(["train", cfg, "data.name=digits", "--workdir", str(tmp_path / "s")]) == 2
    assert "no exported model" in capsys.readouterr().err


def test_console_entry_point_runs_as_module(tmp_path):
    out = subprocess.run([sys.executable, "-m", "jka", "train", TEACHER, "train.steps=2", "train.progress=False",
                          "train.mesh.data=1", "model.kwargs={'width': 0.25}", "--workdir", str(tmp_path / "t")],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, "XLA_FLAGS": ""})
    assert out.returncode == 0, out.stderr
    summary = json.load(open(tmp_path / "t" / "summary.json"))
    assert summary["step"] == 2 and 0.0 <= summary["eval"]["accuracy"] <= 1.0
    ev = subprocess.run([sys.executable, "-m", "jka", "eval", TEACHER, "train.mesh.data=1",
                         "model.kwargs={'width': 0.25}", "--workdir", str(tmp_path / "t")],
                        capture_output=True, text=True, cwd=REPO, env={**os.environ, "XLA_FLAGS": ""})
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["eval"]["accuracy"] == pytest.approx(summary["eval"]["accuracy"])


def test_override_into_a_missing_list_entry():
    with pytest.raises(ConfigError, match="teachers.0.*has 0 entries"):
        config_lib.load(TEACHER, ["teachers.0.workdir=x"])
