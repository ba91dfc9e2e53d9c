"""`jka check`: a rehearsal at the real shapes, with random teachers (and random data where the
dataset is not downloaded), that reports what the run will need before any real work; a job is
rehearsed phase by phase. tests/test_rehearsal.py rehearses every shipped config."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from benchmarks.throughput import CIFAR_MEAN, build_parser, make_config, synthetic_program
from jka import methods, models, run
from jka.check import rehearse
from jka.check.sizes import parts
from jka.check.standin import standing_in
from jka.cli import main
from jka.data import load_split
from jka.data.scenes import load_dense_split
from jka.errors import ConfigError, UserError
from jka.methods.amalgamation.adaptive import derive_subtasks
from jka.train.export import export_model
from jka.train.state import State
from tests.conftest import REPO
from tests.helpers import error_lines


def _cfg(name, *overrides):
    return run.load(name, list(overrides))


def _count(tree):
    return sum(int(a.size) for a in jax.tree.leaves(tree))


def _params(arch, classes, shape, **kwargs):
    return _count(models.create(arch, classes, **kwargs).init(jax.random.PRNGKey(0), jnp.zeros((1, *shape)),
                                                              train=False)["params"])


def test_cmi_resnet34_to_resnet18_has_the_references_head_and_bank():
    """The feature is the inputs of layer1..4 (64 + 64 + 128 + 256 = 512), so the head is
    Linear 512→512, ReLU, Linear 512→256 and the bank holds 40960 [global | local] rows of 2·512."""
    r = rehearse(_cfg("datafree/cifar10:method=cmi,pair=resnet34_resnet18"), trace_only=True)
    assert r["parameters"]["head"] == (512 * 512 + 512) + (512 * 256 + 256)
    bank = next(a for a in r["largest_arrays"] if a["path"] == "buffers.bank.data")
    assert bank["shape"] == [40960, 1024]
    assert r["parameters"]["student"] == _params("cifar_resnet18", 10, (32, 32, 3))
    assert r["units"] == 200 and r["batch"] == 128 and r["image_shape"] == [32, 32, 3]
    assert r["flops_per_unit"] > 0 and r["h100"]["run_s"] == pytest.approx(200 * r["h100"]["unit_s"])
    assert r["step_memory_bytes"] is None and r["compile_s"] is None  # traced only
    assert "random images" in r["data"]  # CIFAR-10 is not downloaded on the test machines


def test_digits_kd_unit_runs_and_the_projection_is_units_times_the_unit(tmp_path, capsys):
    out = tmp_path / "check.json"
    assert main(["check", "digits/kd", "train.steps=40", "--json", str(out)]) == 0
    r = json.load(open(out))
    assert "jka check: kd, 40 units" in capsys.readouterr().out
    assert r["data"] == "the real dataset" and [t.split()[0] for t in r["teachers"]] == ["small_cnn", "small_cnn"]
    assert r["unit_s_here"] > 0 and r["run_s_here"] == pytest.approx(40 * r["unit_s_here"])
    assert r["parameters"] == {"student": _params("small_cnn", 10, (8, 8, 1))} and r["frozen_parameters"] == {}
    assert r["step_memory_bytes"] > 4 * r["parameters"]["student"]
    assert not os.path.exists(os.path.join(REPO, "teacher_a"))  # nothing trained, nothing written


def test_a_job_is_rehearsed_phase_by_phase_each_from_the_models_before_it(tmp_path, capsys):
    """Adaptive amalgamation: one component per sub-task (the student's architecture over the
    sub-task's classes), then the student, whose teachers are those components."""
    out = tmp_path / "check.json"
    assert main(["check", "amalgamation/digits:method=adaptive", "--json", str(out)]) == 0
    text, r = capsys.readouterr().out, json.load(open(out))
    cfg = _cfg("amalgamation/digits:method=adaptive")
    subtasks = derive_subtasks([list(t["classes"]) for t in cfg.teachers])  # [0-2], [3-6], [7-9]
    names = [f"component_{g}" for g in range(len(subtasks))] + ["student"]
    assert [p["phase"] for p in r["phases"]] == names and "a job of 4 phases" in text and "the whole job" in text
    for g, classes in enumerate(subtasks):
        p = r["phases"][g]
        assert p["algorithm"] == "adaptive_component" and p["classes"] == len(classes) and p["units"] == 300
        assert p["parameters"]["student"] == _params("small_cnn", len(classes), (8, 8, 1))
        assert p["unit_s_here"] > 0 and p["step_memory_bytes"] > 0
    student = r["phases"][-1]
    assert student["teachers"] == [f"small_cnn (the model of phase component_{g})" for g in range(3)]
    assert student["teacher_parameters"] == [_count(models.create("small_cnn", len(c)).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)), train=False)) for c in subtasks]
    assert student["parameters"]["student"] == _params("small_cnn", 10, (8, 8, 1)) and student["units"] == 600
    assert r["units"] == 3 * 300 + 600
    assert r["run_s_here"] == pytest.approx(sum(p["run_s_here"] for p in r["phases"]))
    assert r["h100"]["run_s"] == pytest.approx(sum(p["h100"]["run_s"] for p in r["phases"]))


def test_data_sources_not_here_are_random_images_of_every_sources_classes(tmp_path):
    """cars196's 196 classes come from tfds's metadata; the folder's 100 are what the teachers'
    label space (0..295) leaves; both at data.image_size."""
    cfg = _cfg("amalgamation/cars_aircraft", "data.image_size=32",
               f"data.sources.0.data_dir={str(tmp_path / 'tfds')!r}",
               f"data.sources.1.folder={str(tmp_path / 'aircraft')!r}")
    with standing_in(cfg) as notes:
        ds = load_split(cfg.data, "train")
    assert ds.num_classes == 296 and ds.image_shape == (32, 32, 3) and ds.images.dtype == np.uint8
    assert sorted(np.unique(ds.labels).tolist()) == list(range(296))
    assert any(n.startswith("cars196") for n in notes) and any("data.sources[1]" in n for n in notes)
    for t in cfg.teachers:
        t["classes"] = None
    with pytest.raises(UserError, match=r"data.sources\[1\] is not on this machine and nothing says how many") as err:
        with standing_in(cfg):
            load_split(cfg.data, "train")
    assert "\n" not in str(err.value)


def test_a_source_that_is_here_stays_real_next_to_one_stood_in_for(tmp_path):
    for c in ("a", "b", "c"):
        os.makedirs(tmp_path / "aircraft" / "trainval" / c)
        Image.fromarray(np.full((5, 5, 3), 40, np.uint8)).save(tmp_path / "aircraft" / "trainval" / c / "x.png")
    cfg = _cfg("amalgamation/cars_aircraft", "data.image_size=16",
               f"data.sources.0.data_dir={str(tmp_path / 'tfds')!r}",
               f"data.sources.1.folder={str(tmp_path / 'aircraft')!r}")
    with standing_in(cfg) as notes:
        ds = load_split(cfg.data, "train")
    assert ds.num_classes == 196 + 3 and ds.image_shape == (16, 16, 3)
    real = ds.images[ds.labels >= 196]
    assert len(real) == 3 and (real == 40).all()  # the folder's own images
    assert not any("data.sources[1]" in n for n in notes)


def test_nyuv2_not_prepared_is_random_scenes_of_its_documented_size():
    cfg = _cfg("amalgamation/nyuv2", "data.data_dir='/nonexistent/nyuv2'")
    with standing_in(cfg) as notes:
        ds = load_dense_split(cfg.data, "train")
    assert ds.images.shape[1:] == (288, 384, 3) and ds.seg.shape[1:] == (288, 384) and ds.num_classes == 13
    assert ds.seg.max() < 13 and ds.depth.min() > 0 and len(notes) == 1


def test_trained_parts_are_the_groups_parts_and_frozen_copies_apart():
    tx = optax.adam(1e-3)
    layer = {"kernel": jnp.zeros((3, 4)), "bias": jnp.zeros(4)}
    v = lambda params: {"params": params}  # noqa: E731
    one = State.create(jnp.zeros(2, jnp.uint32), {"student": v({"conv1": layer, "block1": {"conv": layer}})},
                       {"student": (("student",), tx)})
    assert parts(one) == ({"student": 32}, {})
    several = State.create(jnp.zeros(2, jnp.uint32), {"student": v({"conv1": layer}),
                                                      "blocks": v({"proj0": layer, "proj1": layer}),
                                                      "head": v({"fc": layer})},
                           {"student": (("student", "blocks"), tx), "head": (("head",), tx)},
                           {"bank": jnp.zeros(9), "frozen": {"generator": {"params": {"l1": layer}, "batch_stats": {}}}})
    assert parts(several) == ({"student": 16, "blocks": 32, "head": 16}, {"buffers.frozen.generator": 16})


def test_the_benchmarks_synthetic_data_is_checks_stand_in():
    args = build_parser().parse_args(["--task", "supervised", "--student", "cifar_resnet8", "--batch", "8",
                                      "--image-size", "16", "--num-classes", "7"])
    args.dtype = "float32"
    program = synthetic_program(methods.get("supervised"), make_config(args), [])
    assert program.data.image_shape == (16, 16, 3) and program.data.train.num_classes == 7
    assert tuple(program.data.mean) == CIFAR_MEAN and len(program.data.train) >= 4 * 8


@pytest.mark.parametrize("args, needle", [
    (["datafree/cifar10:method=dfad", "teachers.0.arch=None"], "cannot know its architecture"),
    (["digits/kd", "--json", "/nonexistent/dir/r.json"], "does not exist"),
    (["distill/digits_netgraft", "model.kwargs={'width': 0.5}"],  # a job's phase, named
     "phase block0: netgraft: model.kwargs.width must equal the teacher's width (0.25)"),
])
def test_what_check_cannot_rehearse_is_one_line(args, needle, capsys):
    assert main(["check", *args]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and needle in err[0], err


def test_a_teacher_whose_arch_is_not_the_exported_models_is_refused(tmp_path):
    variables = models.create("small_cnn", 10).init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)), train=False)
    export_model(str(tmp_path / "t"), "small_cnn", 10, dict(variables))
    cfg = _cfg("digits/kd")
    cfg.teachers = [dict(workdir=str(tmp_path / "t"), arch="small_cnn")]
    assert run.resolve_teachers(cfg, str(tmp_path))[0].arch == "small_cnn"
    cfg.teachers = [dict(workdir=str(tmp_path / "t"), arch="wrn16_1")]
    with pytest.raises(ConfigError, match=r"teachers\[0\].arch is 'wrn16_1' but the model at .* is a 'small_cnn'"):
        run.resolve_teachers(cfg, str(tmp_path))
