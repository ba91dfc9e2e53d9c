"""`jka check`: a rehearsal at the real shapes, with random teachers (and random data where the
dataset is not downloaded), that reports what the run will need before any real work."""
import json
import os

import jax
import jax.numpy as jnp
import pytest

from jka import config, models
from jka.check import rehearse
from jka.cli import main
from tests.conftest import REPO
from tests.helpers import error_lines


def _cfg(spec, *overrides):
    return config.load(os.path.join(REPO, spec), list(overrides))


def _count(tree):
    return sum(int(a.size) for a in jax.tree.leaves(tree))


def test_cmi_resnet34_to_resnet18_has_the_references_head_and_bank():
    """The feature is the inputs of layer1..4 (64 + 64 + 128 + 256 = 512), so the head is
    Linear 512→512, ReLU, Linear 512→256 and the bank holds 40960 [global | local] rows of 2·512."""
    r = rehearse(_cfg("configs/datafree/cifar10.py:method=cmi,pair=resnet34_resnet18"), execute=False)
    assert r["parameters"]["extra.head"] == (512 * 512 + 512) + (512 * 256 + 256)
    bank = next(a for a in r["largest_arrays"] if a["path"] == "extra.bank.data")
    assert bank["shape"] == [40960, 1024]
    student = models.create("cifar_resnet18", 10).init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), train=False)
    assert r["parameters"]["student"] == _count(student["params"])
    assert r["units"] == 200 and r["batch"] == 128 and r["image_shape"] == [32, 32, 3]
    assert r["flops_per_unit"] > 0 and r["h100"]["run_s"] == pytest.approx(200 * r["h100"]["unit_s"])
    assert "random images" in r["data"]  # CIFAR-10 is not downloaded on the test machines


def test_digits_kd_unit_runs_and_the_projection_is_units_times_the_unit(tmp_path, capsys):
    out = tmp_path / "check.json"
    assert main(["check", "configs/digits/kd.py", "train.steps=40", "--json", str(out)]) == 0
    r = json.load(open(out))
    assert "jka check: kd, 40 units" in capsys.readouterr().out
    assert r["data"] == "the real dataset" and [t.split()[0] for t in r["teachers"]] == ["small_cnn", "small_cnn"]
    assert r["unit_s_here"] > 0 and r["run_s_here"] == pytest.approx(40 * r["unit_s_here"])
    student = models.create("small_cnn", 10).init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)), train=False)
    assert r["parameters"] == {"student": _count(student["params"])}
    assert not os.path.exists(os.path.join(REPO, "teacher_a"))  # nothing trained, nothing written


@pytest.mark.parametrize("args, needle", [
    (["configs/amalgamation/digits.py:method=adaptive"], "is a job of several phases"),
    (["configs/datafree/cifar10.py:method=dfad", "teachers.0.arch=None"], "cannot know its architecture"),
    (["configs/digits/kd.py", "--json", "/nonexistent/dir/r.json"], "does not exist"),
])
def test_what_check_cannot_rehearse_is_one_line(args, needle, capsys):
    assert main(["check", *args]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and needle in err[0], err


def test_a_teacher_whose_arch_is_not_the_exported_models_is_refused(tmp_path):
    from jka import run
    from jka.errors import ConfigError
    from jka.train.export import export_model
    variables = models.create("small_cnn", 10).init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)), train=False)
    export_model(str(tmp_path / "t"), "small_cnn", 10, dict(variables))
    cfg = _cfg("configs/digits/kd.py")
    cfg.teachers = [dict(workdir=str(tmp_path / "t"), arch="small_cnn")]
    assert run.resolve_teachers(cfg, str(tmp_path))[0].arch == "small_cnn"
    cfg.teachers = [dict(workdir=str(tmp_path / "t"), arch="wrn16_1")]
    with pytest.raises(ConfigError, match=r"teachers\[0\].arch is 'wrn16_1' but the model at .* is a 'small_cnn'"):
        run.resolve_teachers(cfg, str(tmp_path))
