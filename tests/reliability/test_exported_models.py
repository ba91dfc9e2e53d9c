"""Damaged or unfitting exported models end in one line (exit 2) before any compute, with nothing lost.

Teachers are random small_cnn exports (no training); each is damaged one way and named by a tiny
``jka train`` KD run, which must refuse before it writes a checkpoint.
"""
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from jka import models
from jka.cli import main
from jka.convert import families
from jka.errors import UserError
from jka.train.export import OTHER_ARCHS, export_model, load_model, model_dir, to_host
from jka.train.teachers import Teacher, check_fit, load_teacher

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KD = "digits/kd"
WIDTH = {"width": 0.25}


# -- helpers (also used by test_convert_transfer.py) ------------------------------------------------
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d jka [DIWEC] ")  # jka's progress log on stderr


def refused(capsys, argv, needle: str) -> str:
    """Run the CLI; assert exit 2 and exactly one error line on stderr, ``jka: error: ...`` containing
    ``needle`` (other stderr lines may only be jka's own log lines)."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not LOG_LINE.match(line)]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("jka: error:"), err
    assert needle in lines[0], lines[0]
    return lines[0]


def snapshot(root) -> dict:
    """Every file under ``root`` with its bytes (to show that nothing changed)."""
    out = {}
    for d, _, files in os.walk(root):
        for name in files:
            path = os.path.join(d, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def random_variables(n=5, channels=1, seed=0, arch="small_cnn", kwargs=WIDTH) -> dict:
    module = models.create(arch, n, **kwargs)
    variables = module.init(jax.random.PRNGKey(seed), jnp.zeros((1, 8, 8, channels)), train=False)
    return to_host({k: variables[k] for k in ("params", "batch_stats") if k in variables})


def export_small(workdir, n=5, channels=1, seed=0, arch="small_cnn", kwargs=None, **meta) -> str:
    """A random ``arch`` for 8x8 ``channels``-channel images exported into ``workdir/model``."""
    kwargs = dict(WIDTH if kwargs is None else kwargs)
    meta = {"classes": list(range(n)), "kwargs": kwargs, "image_shape": [8, 8, channels], **meta}
    export_model(os.path.join(workdir, "model"), arch, n, random_variables(n, channels, seed, arch, kwargs), **meta)
    return str(workdir)


DELETE = object()  # edit_json(d, key=DELETE) removes the key


def edit_json(workdir, **fields):
    path = os.path.join(workdir, "model", "model.json")
    info = {**json.load(open(path)), **fields}
    with open(path, "w") as f:
        json.dump({k: v for k, v in info.items() if v is not DELETE}, f)


def write(workdir, name, data: bytes):
    with open(os.path.join(workdir, "model", name), "wb") as f:
        f.write(data)


def write_variables(workdir, tree):
    write(workdir, "variables.msgpack", serialization.msgpack_serialize(tree))


def truncate(workdir, name, keep: int):
    path = os.path.join(workdir, "model", name)
    data = open(path, "rb").read()
    write(workdir, name, data[:keep])


def kd_argv(teacher_a, teacher_b, workdir) -> list:
    return ["train", KD, f"teachers.0.workdir={teacher_a}", f"teachers.1.workdir={teacher_b}", "train.steps=2",
            "train.progress=False", "train.mesh.data=1", "model.kwargs={'width': 0.25}", "data.batch_size=32",
            "--workdir", workdir]


# -- damaged teachers through `jka train` ----------------------------------------------------------
V = random_variables


def nan_variables():
    """A diverged network's variables: one NaN in a kernel."""
    tree = V()
    kernel = np.array(tree["params"]["linear"]["kernel"])
    kernel[0, 0] = np.nan
    return {**tree, "params": {**tree["params"], "linear": {**tree["params"]["linear"], "kernel": kernel}}}


DAMAGES = {  # name: (how teacher b is damaged, what the one line says)
    "json_truncated": (lambda d: truncate(d, "model.json", 20), "model.json: not valid JSON"),
    "json_not_utf8": (lambda d: write(d, "model.json", b"\xff\xfe\x00garbage"), "model.json: not valid JSON"),
    "json_a_list": (lambda d: write(d, "model.json", b'["small_cnn", 5]'), "holds a JSON list, not an object"),
    "arch_missing": (lambda d: edit_json(d, arch=DELETE), "has no 'arch'"),
    "arch_unknown": (lambda d: edit_json(d, arch="resnet9000"), "unknown arch 'resnet9000'; valid choices: "),
    "arch_not_a_string": (lambda d: edit_json(d, arch=["small_cnn"]), "unknown arch ['small_cnn']"),
    "num_classes_missing": (lambda d: edit_json(d, num_classes=DELETE), "num_classes must be a positive whole number"),
    "num_classes_zero": (lambda d: edit_json(d, num_classes=0), "num_classes must be a positive whole number, not 0"),
    "num_classes_text": (lambda d: edit_json(d, num_classes="5"), "num_classes must be a positive whole number"),
    "num_classes_float": (lambda d: edit_json(d, num_classes=5.0), "num_classes must be a positive whole number"),
    "num_classes_vs_variables": (lambda d: edit_json(d, num_classes=4, classes=[0, 1, 2, 3]),
                                 "params/linear/bias has shape (5,) but small_cnn with 4 outputs"),
    "kwargs_unknown_option": (lambda d: edit_json(d, kwargs={"depth": 3}), "kwargs {'depth': 3} does not fit model"),
    "kwargs_wrong_type": (lambda d: edit_json(d, kwargs={"width": "wide"}), "kwargs.width='wide'"),
    "kwargs_not_a_dict": (lambda d: edit_json(d, kwargs=[0.25]), "kwargs must be a dict of options"),
    "kwargs_vs_variables": (lambda d: edit_json(d, kwargs={"width": 0.5}),
                            "params/bn1/bias has shape (8,) but small_cnn with 5 outputs"),
    "classes_duplicated": (lambda d: edit_json(d, classes=[0, 1, 1, 2, 3]), "classes must list 5 distinct"),
    "classes_negative": (lambda d: edit_json(d, classes=[-1, 0, 1, 2, 3]), "classes must list 5 distinct"),
    "classes_too_few": (lambda d: edit_json(d, classes=[0, 1]), "classes must list 5 distinct"),
    "image_shape_bad": (lambda d: edit_json(d, image_shape=[8, 8]), "image_shape must be [height, width, channels]"),
    "variables_missing": (lambda d: os.remove(os.path.join(d, "model", "variables.msgpack")),
                          "variables.msgpack: is missing"),
    "variables_empty": (lambda d: write(d, "variables.msgpack", b""), "variables.msgpack: is empty"),
    "variables_truncated": (lambda d: truncate(d, "variables.msgpack", 200), "is not a readable msgpack file"),
    "variables_garbage": (lambda d: write(d, "variables.msgpack", b"\xc1\xc1 junk"), "is not a readable msgpack"),
    "variables_not_a_dict": (lambda d: write_variables(d, 5), "holds a int, not a dict of variable collections"),
    "variables_without_params": (lambda d: write_variables(d, {"batch_stats": V()["batch_stats"]}),
                                 "holds no 'params'"),
    "variables_of_other_width": (lambda d: write_variables(d, V(kwargs={"width": 0.5})),
                                 "params/bn1/bias has shape (16,) but"),
    "variables_missing_leaf": (lambda d: write_variables(d, {**V(), "batch_stats": {}}),
                               "batch_stats/bn1/mean is missing but small_cnn"),
    "variables_extra_leaf": (lambda d: write_variables(d, {**V(), "params": {**V()["params"], "x": {"k": np.ones(3)}}}),
                             "params/x/k (shape (3,)) has no place in the architecture"),
    "variables_nan": (lambda d: write_variables(d, nan_variables()),
                      "holds NaN or inf values in 1 array(s) (['params']['linear']['kernel'])"),
    "generator_as_teacher": (lambda d: edit_json(d, arch="dfa_dual_blocks"),
                             "is a 'dfa_dual_blocks', not a classifier"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_teacher_refuses_jka_train_in_one_line(tmp_path, capsys, damage):
    spoil, needle = DAMAGES[damage]
    a, b = export_small(tmp_path / "a"), export_small(tmp_path / "b", seed=1)
    spoil(b)
    before = snapshot(tmp_path)
    line = refused(capsys, kd_argv(a, b, tmp_path / "student"), needle)
    assert str(tmp_path / "b") in line  # names the file (or the teacher)
    assert "re-export" in line or "not a classifier" in line  # says what to do
    assert snapshot(tmp_path / "a") == {k[2:]: v for k, v in before.items() if k.startswith("a/")}
    assert snapshot(tmp_path / "b") == {k[2:]: v for k, v in before.items() if k.startswith("b/")}
    student = tmp_path / "student"
    for written in ("checkpoints", "model", "summary.json"):  # refused before any training
        assert not (student / written).exists()


def test_unknown_arch_lists_the_valid_ones(tmp_path):
    export_small(tmp_path / "m")
    edit_json(tmp_path / "m", arch="resnet9000")
    with pytest.raises(UserError) as err:
        load_model(str(tmp_path / "m"))
    assert all(name in str(err.value) for name in ("small_cnn", "wrn16_1", "generator", "dfa_dual_blocks"))


def test_a_workdir_with_two_models_is_ambiguous(tmp_path, capsys):
    """A `jka convert` into a training workdir (as earlier versions allowed) left WORKDIR/model.json
    next to the trained WORKDIR/model/: which one a teacher entry means is not guessed."""
    a, b = export_small(tmp_path / "a"), export_small(tmp_path / "b", seed=1)
    export_model(b, "small_cnn", 5, random_variables(seed=2), kwargs=WIDTH, converted_from="pytorch")
    with pytest.raises(UserError, match="holds two exported models"):
        model_dir(b)
    before = snapshot(tmp_path)
    line = refused(capsys, kd_argv(a, b, tmp_path / "student"), "holds two exported models")
    assert os.path.join(b, "model.json") in line and os.path.join(b, "model", "model.json") in line
    assert "remove" in line
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("student")} == before


# -- teachers that do not fit the run's data ------------------------------------------------------
def test_check_fit_refuses_an_rgb_teacher_on_one_channel_images(tmp_path):
    teacher = load_teacher(export_small(tmp_path / "rgb", channels=3))
    with pytest.raises(UserError) as err:
        check_fit(teacher, (8, 8, 1))
    msg = str(err.value)
    assert msg.startswith(f"teacher {tmp_path / 'rgb'}: params/conv1/kernel has shape (3,3,3,8) but this run's "
                          "1-channel 8x8 images need (3,3,1,8)")
    assert msg.endswith("train or convert the teacher for this data") and "\n" not in msg
    check_fit(teacher, (8, 8, 3))  # its own data: fits
    check_fit(load_teacher(export_small(tmp_path / "gray")), (8, 8, 1))


@pytest.mark.parametrize("arch", models.available())
def test_check_fit_takes_every_zoo_classifier(arch):
    """Every architecture's own freshly initialised variables fit (branchy_segnet: all branches)."""
    kwargs = {"branchy_segnet": {"task_channels": [2, 3]}, "vit": {"img_size": 32}}.get(arch, {})
    n, shape = 5, (32, 32, 3)
    module = models.create(arch, n, **kwargs)
    method = "init_all" if arch == "branchy_segnet" else None
    x = jnp.zeros((1, *shape))
    abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), x, train=False, method=method))
    variables = {c: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), abstract[c])
                 for c in ("params", "batch_stats") if c in abstract}
    check_fit(Teacher(arch, module, variables, list(range(n)), kwargs, arch), shape)


def test_rgb_teacher_on_digits_refuses_jka_train(tmp_path, capsys):
    a, b = export_small(tmp_path / "a"), export_small(tmp_path / "b", seed=1, channels=3)
    line = refused(capsys, kd_argv(a, b, tmp_path / "student"), "params/conv1/kernel has shape (3,3,3,8)")
    assert "1-channel 8x8 images need (3,3,1,8)" in line and str(tmp_path / "b") in line
    assert not (tmp_path / "student" / "checkpoints").exists()


# -- what must keep loading ---------------------------------------------------------------------
def test_jkas_own_phase_exports_still_load(tmp_path):
    """Archs outside the classifier zoo (data-free phases, generators) get the generic checks only."""
    export_model(str(tmp_path / "dual"), "dfa_dual_blocks", 3, {"blocks": {"b1": jnp.zeros(2)}}, classes=[1, 4, 7],
                 image_shape=[8, 8, 1])
    variables, info = load_model(str(tmp_path / "dual"))
    assert info["arch"] == "dfa_dual_blocks" and variables["blocks"]["b1"].shape == (2,)
    export_model(str(tmp_path / "gan"), "dcgan_generator", 0, {"params": {"w": jnp.ones(1)}}, nz=8)
    assert load_model(str(tmp_path / "gan"))[1]["num_classes"] == 0
    assert set(families.GENERATOR_START_MULT) <= set(OTHER_ARCHS)  # convert's generators load


def test_export_leaves_no_partial_files(tmp_path):
    export_small(tmp_path / "m")
    assert sorted(os.listdir(tmp_path / "m" / "model")) == ["model.json", "variables.msgpack"]
    variables, info = load_model(str(tmp_path / "m"))
    assert info["image_shape"] == [8, 8, 1] and "params" in variables


def test_a_teacher_not_trained_from_its_config_is_named_in_a_warning(tmp_path, capsys):
    """A teacher workdir holding a model its config would not train (another width) is used, as found
    models are (trained or converted on purpose), and the run says so; so it does of a teacher whose
    model.json says it was trained on inputs normalised otherwise than this run's data."""
    kd = ["train", "digits/kd:teachers=one", "train.steps=2", "train.progress=False", "teachers.0.config.train.steps=3"]
    first, second = tmp_path / "first", tmp_path / "second"
    assert main([*kd, "teachers.0.config.model.kwargs={'width': 0.25}", "--workdir", str(first)]) == 0
    assert "trained on inputs normalised" not in capsys.readouterr().err  # its own data's statistics
    info_path = first / "teacher" / "model" / "model.json"
    info = json.loads(info_path.read_text())
    assert info["mean"] == [0.3059] and info["std"] == [0.3782]  # the digits' (jka.data.sources)
    info_path.write_text(json.dumps({**info, "mean": [0.5], "std": [0.5]}))
    assert main([*kd, "teachers.0.config.model.kwargs={'width': 0.5}", f"teachers.0.workdir={first / 'teacher'}",
                 "--workdir", str(second)]) == 0
    err = capsys.readouterr().err
    assert "is a small_cnn {'width': 0.25}, not the small_cnn {'width': 0.5} its config trains" in err, err
    assert ("was trained on inputs normalised with mean (0.5), std (0.5), but this run's data uses mean (0.3059), "
            "std (0.3782)") in err, err
