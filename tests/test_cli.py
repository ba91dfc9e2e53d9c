"""Config loading (shipped configs by name, files by path), overrides, ``jka configs``, and the CLI's
one-line errors with exit code 2."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jka import config as config_lib, run
from jka.cli import main
from jka.convert import load_torch
from jka.train.export import load_model
from jka.errors import ConfigError
from tests.helpers import error_lines

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEACHER = "digits/teacher"


def test_overrides_parse_and_keep_types():
    cfg = run.load(TEACHER, ["train.steps=7", "optim.lr=1", "data.classes=[1,2]", "optim.name=adam"])
    assert cfg.train.steps == 7 and cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert list(cfg.data.classes) == [1, 2] and cfg.optim.name == "adam"


@pytest.mark.parametrize("args, needle", [
    (["train", "configs/nope.py", "--workdir", "w"], "is neither a file nor a config shipped with jka"),
    (["train", "digits/nope", "--workdir", "w"], "`jka configs` lists the shipped ones"),
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
    assert main(["train", "cifar/kd", "data.name=digits", "--workdir", str(tmp_path / "s")]) == 2
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
    # `jka export` of the trained workdir, where torch cannot be imported; `jka convert`'s reading of the
    # exported file gives the trained variables back (tests/convert/test_export.py runs the PyTorch twin)
    out = tmp_path / "student_torch"
    no_torch = ("import sys; sys.modules['torch'] = None; from jka.entry import main; sys.argv = "
                f"['jka', 'export', {str(tmp_path / 't')!r}, '--to', 'torch', {str(out)!r}]; sys.exit(main())")
    ex = subprocess.run([sys.executable, "-c", no_torch], capture_output=True, text=True, cwd=REPO,
                        env={**os.environ, "XLA_FLAGS": ""})
    assert ex.returncode == 0 and not error_lines(ex.stderr), ex.stderr
    variables, info = load_model(str(tmp_path / "t"))
    described = json.loads((out / "torch.json").read_text())
    assert (described["arch"], described["kwargs"]) == ("small_cnn", {"width": 0.25, "in_channels": 1})
    assert described["input"] == {"shape": [1, 8, 8], "mean": info["mean"], "std": info["std"]}
    back = load_torch(out / "model.safetensors", "small_cnn", 10, {"width": 0.25})
    jax.tree.map(np.testing.assert_array_equal, back, variables)


HEAVY = ("jax", "flax", "optax", "orbax", "tensorflow_datasets", "torch", "ml_collections")
# `jka ARGS` in a fresh process, then its exit code and which of HEAVY it imported, on stderr's last line
WHAT_LOADED = f"""
import sys
from jka import entry
try:
    code = entry.main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
print("exit", code, "loaded", sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})), file=sys.stderr)
"""


def _loaded(argv):
    out = subprocess.run([sys.executable, "-c", WHAT_LOADED, *argv], capture_output=True, text=True, cwd=REPO)
    return out.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, code", [(["--help"], 0), (["train", "--help"], 0), (["check", "--help"], 0),
                                        (["--version"], 0), (["train"], 2), (["bogus"], 2)])
def test_help_version_and_usage_errors_import_no_jax_flax_or_tfds(argv, code):
    """What `jka --help` costs is the parser: the heavy packages wait until a command runs."""
    assert _loaded(argv) == f"exit {code} loaded []"


def test_override_into_a_missing_list_entry():
    with pytest.raises(ConfigError, match="teachers.0.*has 0 entries"):
        run.load(TEACHER, ["teachers.0.workdir=x"])


def test_shipped_configs_by_name_by_old_path_and_by_file(tmp_path):
    by_name = run.load("digits/kd")
    assert by_name.algorithm == "kd" and by_name.kd.T == 4.0 and by_name.train.steps == 800
    assert run.load("configs/digits/kd.py").to_dict() == by_name.to_dict()  # a checkout's old path
    assert run.load(os.path.join(REPO, "jka", "configs", "digits", "kd.py")).to_dict() == by_name.to_dict()
    assert run.load("digits/kd:teachers=one").kd.beta == 0.1
    assert run.load("distill/digits:at").distill.method == "at"  # name:value sets the first argument
    with pytest.raises(ConfigError, match="has no argument pair; its arguments: method='kd'"):
        run.load("distill/digits:pair=x")


def test_jka_configs_lists_every_shipped_config_with_its_variants(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    names = [e["name"] for e in config_lib.shipped()]
    assert len(names) >= 19 and all(n in out for n in names)
    assert ":teachers=two*|one" in out and ":method=kd*|hint|at" in out  # closed choices, the default starred
    assert main(["configs", "distill/digits:method=at", "distill.gamma=5"]) == 0
    shown = capsys.readouterr().out
    assert '"method": "at"' in shown and '"gamma": 5,' in shown and '"log_every": 100' in shown
