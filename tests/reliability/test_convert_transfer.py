"""`jka convert` and `jka transfer` refuse what they cannot use in one line (exit 2), before any
checkpoint is read or model runs, and leave every existing file as it was."""
import json
import os

import numpy as np
import pytest

from jka.cli import main
from jka.convert import bridge
from jka.errors import UserError
from jka.train.export import export_model, load_model
from jka.transfer.zoo import check_probe, load_probe, load_zoo_dir
from tests.reliability.test_exported_models import edit_json, export_small, refused, snapshot


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real PyTorch small_cnn state dict (5 classes, 1 channel): converting it works when allowed."""
    torch = pytest.importorskip("torch")
    from tests.convert.twins import random_twin

    path = tmp_path_factory.mktemp("src") / "teacher.pt"
    torch.save(random_twin("small_cnn", 5, in_channels=1).state_dict(), path)
    return path


def convert_argv(src, out, *extra, arch="small_cnn", n=5):
    return ["convert", arch, src, out, "--num-classes", n, *extra]


def training_workdir(root) -> str:
    """What `jka train` leaves: checkpoints/, model/, summary.json, config.json."""
    work = export_small(root)
    os.makedirs(os.path.join(work, "checkpoints", "2"))
    for name, text in (("summary.json", '{"step": 2}'), ("config.json", "{}"),
                       (os.path.join("checkpoints", "2", "state"), "x")):
        with open(os.path.join(work, name), "w") as f:
            f.write(text)
    return work


# -- convert: the arguments ----------------------------------------------------------------------
@pytest.mark.parametrize("arch,n,extra,needle", [
    ("small_cnn", 0, [], "--num-classes must be at least 1 for small_cnn, not 0"),
    ("small_cnn", -3, [], "--num-classes must be at least 1"),
    ("generator", -1, [], "--num-classes must be at least 0 for generator"),
    ("resnet9000", 5, [], "unknown architecture 'resnet9000'; valid choices:"),
    ("small_cnn", 5, ["--kwargs", '{"depth": 3}'], "--kwargs {'depth': 3} does not fit model 'small_cnn'"),
    ("small_cnn", 5, ["--kwargs", '{"width": "wide"}'], "--kwargs.width='wide'"),
    ("generator", 1, ["--kwargs", '{"nz": "big"}'], "do not fit generator: its options are nz, ngf, img_size, nc"),
    ("generator", 1, ["--kwargs", '{"depth": 2}'], "do not fit generator"),
    ("small_cnn", 5, ["--image-size", "0"], "--image-size must be a positive number of pixels, not 0"),
])
def test_convert_refuses_bad_arguments_before_reading(tmp_path, capsys, arch, n, extra, needle):
    src = tmp_path / "never_read.pt"  # does not exist: the arguments are refused first
    refused(capsys, convert_argv(src, tmp_path / "out", *extra, arch=arch, n=n), needle)
    assert not (tmp_path / "out").exists()


def test_unknown_convert_arch_lists_the_generators(tmp_path, capsys):
    line = refused(capsys, convert_argv(tmp_path / "x.pt", tmp_path / "out", arch="resnet9000"), "valid choices")
    assert "large_generator" in line and "wrn40_2" in line


def test_generators_may_give_zero_classes(tmp_path, capsys):
    """--num-classes is ignored for generators: 0 passes the argument checks (here the file is missing)."""
    refused(capsys, convert_argv(tmp_path / "g.pt", tmp_path / "out", arch="generator", n=0), "no checkpoint file")


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "garbage"])
def test_convert_refuses_an_unreadable_source(tmp_path, capsys, kind):
    src = tmp_path / "src.pt"
    if kind == "directory":
        src.mkdir()
    elif kind != "missing":
        pytest.importorskip("torch")  # without it the message asks to install it
        src.write_bytes(b"" if kind == "empty" else b"not a pickle at all")
    needle = "no checkpoint file" if kind in ("missing", "directory") else "cannot load"
    refused(capsys, convert_argv(src, tmp_path / "out"), needle)
    assert not (tmp_path / "out").exists()


# -- convert: where it writes -------------------------------------------------------------------
def test_convert_refuses_a_training_workdir_and_leaves_it_byte_identical(tmp_path, capsys, checkpoint):
    """Writing WORKDIR/model.json would shadow the trained WORKDIR/model/ (model_dir takes the first)."""
    work = training_workdir(tmp_path / "run")
    before = snapshot(work)
    line = refused(capsys, convert_argv(checkpoint, work), "is no earlier `jka convert` output")
    assert "checkpoints" in line and "give a new or empty directory" in line
    assert snapshot(work) == before
    assert load_model(work)[1]["arch"] == "small_cnn"  # still the trained model


@pytest.mark.parametrize("kind", ["file", "unrelated_dir", "trained_model_dir", "partial_conversion"])
def test_convert_refuses_an_occupied_out(tmp_path, capsys, checkpoint, kind):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("notes")
    elif kind == "unrelated_dir":
        out.mkdir()
        (out / "notes.txt").write_text("keep me")
    elif kind == "trained_model_dir":  # WORKDIR/model of a training run: no converted_from
        out = tmp_path / "run" / "model"
        export_small(tmp_path / "run")
    else:  # a conversion's model.json next to something else
        bridge.convert("small_cnn", checkpoint, str(out), 5, log=lambda *a: None)
        (out / "extra.txt").write_text("keep me")
    before = snapshot(tmp_path)
    needle = "is a file" if kind == "file" else "is no earlier `jka convert` output"
    refused(capsys, convert_argv(checkpoint, out), needle)
    assert snapshot(tmp_path) == before


def test_convert_refuses_an_out_below_a_file(tmp_path, capsys, checkpoint):
    (tmp_path / "plain").write_text("x")
    refused(capsys, convert_argv(checkpoint, tmp_path / "plain" / "sub" / "out"), "cannot create OUT")
    assert (tmp_path / "plain").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_convert_refuses_an_unwritable_out(tmp_path, capsys, checkpoint):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        refused(capsys, convert_argv(checkpoint, locked / "out"), "is not writable")
    finally:
        locked.chmod(0o700)


def test_convert_replaces_its_own_earlier_output_and_creates_parents(tmp_path, capsys, checkpoint):
    out = tmp_path / "a" / "b" / "teacher"  # parents are created like mkdir -p
    assert main(["convert", "small_cnn", str(checkpoint), str(out), "--num-classes", "5"]) == 0
    first = json.loads((out / "model.json").read_text())
    assert first["converted_from"] == "pytorch"
    assert main(["convert", "small_cnn", str(checkpoint), str(out), "--num-classes", "5"]) == 0  # re-convert
    assert sorted(os.listdir(out)) == ["model.json", "variables.msgpack"]
    variables, info = load_model(str(out))  # and the result passes every load check
    assert info["image_shape"] == [8, 8, 1] and variables["params"]["conv1"]["kernel"].shape[2] == 1
    capsys.readouterr()


def test_an_empty_out_directory_is_fine(tmp_path, checkpoint):
    (tmp_path / "out").mkdir()
    bridge.convert("small_cnn", checkpoint, str(tmp_path / "out"), 5, log=lambda *a: None)
    assert load_model(str(tmp_path / "out"))[1]["num_classes"] == 5


def test_a_damaged_conversion_is_refused_when_used(tmp_path, checkpoint):
    out = tmp_path / "out"
    bridge.convert("small_cnn", checkpoint, str(out), 5, log=lambda *a: None)
    (out / "variables.msgpack").write_bytes((out / "variables.msgpack").read_bytes()[:100])
    with pytest.raises(UserError, match="variables.msgpack: is not a readable msgpack file.*run `jka convert` again"):
        load_model(str(out))


# -- transfer: the probe --------------------------------------------------------------------------
def _zoo(root) -> str:
    for i in range(2):
        export_small(os.path.join(root, f"m{i}"), seed=i, mean=[0.3], std=[0.4])
    return str(root)


def _object_array():
    a = np.empty(2, dtype=object)
    a[:] = [np.zeros((8, 8)), "text"]
    return a


def _truncated(path):
    np.save(path, np.zeros((4, 8, 8), np.uint8))
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) - 100])


PROBES = {
    "missing": (None, "does not exist"),
    "truncated_npy": (_truncated, "cannot read probe file"),
    "garbage_npy": (lambda p: open(p, "wb").write(b"\x93NUMPY garbage"), "cannot read probe file"),
    "object_array": (lambda p: np.save(p, _object_array(), allow_pickle=True), "cannot read probe file"),
    "strings": (lambda p: np.save(p, np.array([["a", "b"], ["c", "d"]])), "holds <U1 values, not numbers"),
    "booleans": (lambda p: np.save(p, np.ones((2, 8, 8), bool)), "holds bool values, not numbers"),
    "rank_1": (lambda p: np.save(p, np.zeros(64, np.uint8)), "must be (N, H, W) or (N, H, W, C)"),
    "rank_5": (lambda p: np.save(p, np.zeros((2, 8, 8, 1, 1), np.uint8)), "has shape (2, 8, 8, 1, 1)"),
    "no_images": (lambda p: np.save(p, np.zeros((0, 8, 8), np.uint8)), "holds no images (shape (0, 8, 8, 1))"),
    "zero_width": (lambda p: np.save(p, np.zeros((3, 8, 0), np.float32)), "holds no images"),
    "nan": (lambda p: np.save(p, np.full((2, 8, 8), np.nan, np.float32)), "holds 128 NaN/inf values"),
    "inf": (lambda p: np.save(p, np.array([[[np.inf]]], np.float32)), "holds 1 NaN/inf values"),
    "float_0_255": (lambda p: np.save(p, np.full((2, 8, 8), 200.0, np.float32)),
                    "values span [200.0, 200.0], outside [0, 1]"),
    "negative_ints": (lambda p: np.save(p, np.full((2, 8, 8), -1, np.int64)), "outside [0, 255]"),
    "constant": (lambda p: np.save(p, np.zeros((5, 8, 8), np.uint8)), "is constant (every value is 0)"),
    "one_image_repeated": (lambda p: np.save(p, np.repeat(np.random.default_rng(0).random((1, 8, 8)), 4, axis=0)),
                           "holds 4 copies of one image"),
}


@pytest.mark.parametrize("case", sorted(PROBES))
def test_transfer_refuses_a_bad_probe_file(tmp_path, capsys, case):
    make, needle = PROBES[case]
    probe = tmp_path / "probe.npy"
    if make:
        make(str(probe))
    out = tmp_path / "out"
    line = refused(capsys, ["transfer", "--zoo", _zoo(tmp_path / "zoo"), "--probe", probe, "--out", out], needle)
    assert str(probe) in line and not out.exists()


@pytest.mark.parametrize("case,needle", [
    ("two_arrays", "holds the arrays ['a', 'b'] but no 'images' or 'image'"),
    ("no_arrays", "holds the arrays none"),
    ("not_a_zip", "cannot read probe file"),
    ("object_member", "cannot read probe file"),
])
def test_transfer_refuses_a_bad_npz(tmp_path, capsys, case, needle):
    probe = tmp_path / "probe.npz"
    if case == "two_arrays":
        np.savez(probe, a=np.zeros((2, 8, 8)), b=np.zeros((2, 8, 8)))
    elif case == "no_arrays":
        np.savez(probe)
    elif case == "not_a_zip":
        probe.write_bytes(b"PK not really")
    else:
        np.savez(probe, images=_object_array())
    refused(capsys, ["transfer", "--zoo", _zoo(tmp_path / "zoo"), "--probe", probe, "--out", tmp_path / "out"], needle)
    assert not (tmp_path / "out").exists()


def test_probe_size_must_be_positive(tmp_path, capsys):
    refused(capsys, ["transfer", "--zoo", _zoo(tmp_path / "zoo"), "--probe", "digits", "--probe-size", "0",
                     "--out", tmp_path / "out"], "the probe size must be at least 1 image, not 0")


def test_good_probe_files_load(tmp_path):
    np.savez(tmp_path / "p.npz", labels=np.arange(3), images=np.arange(3 * 64).reshape(3, 8, 8) % 256)
    images = load_probe(str(tmp_path / "p.npz"))
    assert images.shape == (3, 8, 8, 1) and images.dtype == np.float32 and images.max() == 191 / 255
    np.save(tmp_path / "p.npy", np.linspace(0, 1, 2 * 48).reshape(2, 4, 4, 3))
    assert load_probe(str(tmp_path / "p.npy"), n=1).shape == (1, 4, 4, 3)


def test_probe_channels_are_checked_against_the_zoo_before_any_model_runs(tmp_path, capsys):
    zoo = load_zoo_dir(_zoo(tmp_path / "zoo"))
    with pytest.raises(UserError, match="probe images have 3 channels but model 'm0' expects 1"):
        check_probe(zoo, np.zeros((2, 8, 8, 3), np.float32))
    check_probe(zoo, np.zeros((2, 16, 16, 1), np.float32))  # other sizes are resized
    np.save(tmp_path / "rgb.npy", np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), np.uint8))
    refused(capsys, ["transfer", "--zoo", str(tmp_path / "zoo"), "--probe", tmp_path / "rgb.npy", "--out",
                     tmp_path / "out"], "probe images have 3 channels but model 'm0' expects 1")
    assert not (tmp_path / "out").exists()


# -- transfer: the zoo directory -----------------------------------------------------------------
def test_transfer_refuses_an_empty_zoo(tmp_path, capsys):
    (tmp_path / "zoo").mkdir()
    refused(capsys, ["transfer", "--zoo", tmp_path / "zoo", "--probe", "digits", "--out", tmp_path / "out"],
            "holds 0 exported models; a zoo needs at least 2")


@pytest.mark.parametrize("damage,needle", [
    ("corrupt", "variables.msgpack: is not a readable msgpack file"),
    ("arch", "unknown arch 'nope'"),
    ("not_a_classifier", "zoo model"),
    ("two_models", "holds two exported models"),
])
def test_transfer_refuses_a_damaged_zoo_model(tmp_path, capsys, damage, needle):
    zoo = _zoo(tmp_path / "zoo")
    m1 = os.path.join(zoo, "m1")
    if damage == "corrupt":
        with open(os.path.join(m1, "model", "variables.msgpack"), "wb") as f:
            f.write(b"\xc1")
    elif damage == "two_models":
        export_model(m1, "small_cnn", 5, load_model(m1)[0], converted_from="pytorch")
    else:
        edit_json(m1, arch="nope" if damage == "arch" else "dcgan_generator", **(
            {"num_classes": 0, "classes": []} if damage == "not_a_classifier" else {}))
    before = snapshot(zoo)
    line = refused(capsys, ["transfer", "--zoo", zoo, "--probe", "digits", "--out", tmp_path / "out"], needle)
    assert m1 in line and snapshot(zoo) == before and not (tmp_path / "out").exists()


def test_transfer_out_that_is_a_file_is_refused_before_scoring(tmp_path, capsys, monkeypatch):
    """--out naming an existing file used to fail after the whole comparison, its results lost."""
    import jka.cli

    out = tmp_path / "results.json"
    out.write_text("keep me")
    monkeypatch.setattr(jka.cli, "compare_zoo", lambda *a, **k: pytest.fail("scored before --out was checked"))
    refused(capsys, ["transfer", "--zoo", _zoo(tmp_path / "zoo"), "--probe", "digits", "--out", out],
            "--out " + str(out) + " is a file, not a directory")
    assert out.read_text() == "keep me"


def test_convert_refuses_a_checkpoint_with_nan_weights(tmp_path, capsys):
    """A diverged checkpoint used to convert silently and then fail as a teacher, blaming the lr."""
    torch = pytest.importorskip("torch")
    from tests.convert.twins import random_twin

    state = random_twin("small_cnn", 5, in_channels=1).state_dict()
    state["linear.weight"][0, 0] = float("nan")
    src, out = tmp_path / "diverged.pt", tmp_path / "out"
    torch.save(state, src)
    refused(capsys, convert_argv(src, out), "holds NaN or inf values in 1 tensor(s) (linear.weight)")
    assert not out.exists()
