"""PyTorch → Flax conversion: exact numerics per family, file formats, mismatch messages, CLI, teachers."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jka import cli, errors, models, run  # noqa: E402
from jka.convert import load_torch  # noqa: E402
from jka.data.sources import digits  # noqa: E402
from jka.methods.kd import teacher_logits  # noqa: E402
from tests.convert.twins import random_twin  # noqa: E402
from tests.helpers import import_torchvision  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name, input side, model kwargs, input channels
FAMILIES = [
    ("small_cnn", 8, {}, 1),
    ("cifar_resnet18", 16, {}, 3),
    ("wrn16_1", 16, {}, 3),
    ("vgg8_bn", 16, {}, 3),
    ("mobilenetv2_x0_5", 16, {"stem_stride": 1}, 3),
    ("resnet18", 32, {}, 3),
]
NUM_CLASSES = 5


def torch_outputs(model, x_nchw):
    with torch.no_grad():
        logits, feats = model(torch.from_numpy(x_nchw))
    nhwc = {k: (v.numpy().transpose(0, 2, 3, 1) if v.ndim == 4 else v.numpy()) for k, v in feats.items()}
    return logits.numpy(), nhwc


def flax_outputs(name, variables, x_nchw, **kw):
    model = models.create(name, NUM_CLASSES, **kw)
    with jax.default_matmul_precision("highest"):
        apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
        return apply(variables, jnp.asarray(x_nchw.transpose(0, 2, 3, 1)))


@pytest.mark.parametrize("name,size,kw,in_ch", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_family_converts_exactly_from_pth_and_safetensors(tmp_path, name, size, kw, in_ch):
    from safetensors.torch import save_file

    model = random_twin(name, NUM_CLASSES, in_channels=in_ch, **kw)
    state = model.state_dict()
    pth = tmp_path / "model.pth"
    if name == "cifar_resnet18":  # a training script's checkpoint: nested, DataParallel-prefixed
        torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, pth)
    else:
        torch.save(state, pth)
    st = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))

    from_pth = load_torch(str(pth), name, num_classes=NUM_CLASSES, kwargs=kw)
    from_st = load_torch(st, name, num_classes=NUM_CLASSES, kwargs=kw)
    jax.tree.map(np.testing.assert_array_equal, from_pth, from_st)
    assert set(from_pth) == {"params", "batch_stats"}

    x = np.random.default_rng(1).normal(size=(2, in_ch, size, size)).astype(np.float32)
    t_logits, t_feats = torch_outputs(model, x)
    logits, feats = flax_outputs(name, from_pth, x, **kw)
    np.testing.assert_allclose(logits, t_logits, rtol=0, atol=1e-4)
    assert set(feats) == set(t_feats)
    for k in t_feats:
        np.testing.assert_allclose(feats[k], t_feats[k], rtol=1e-4, atol=1e-4, err_msg=k)


def test_import_and_safetensors_need_no_torch(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file(random_twin("small_cnn", NUM_CLASSES, in_channels=1).state_dict(), str(path))
    code = ("import sys, jka.convert as c; assert 'torch' not in sys.modules, 'import'; "
            f"v = c.load_torch({str(path)!r}, 'small_cnn', num_classes={NUM_CLASSES}); "
            "assert 'torch' not in sys.modules, 'load'; print(v['params']['conv1']['kernel'].shape)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(3, 3, 1, 32)"


def _broken_state():
    state = dict(random_twin("small_cnn", NUM_CLASSES, in_channels=1).state_dict())
    del state["bn2.running_var"]  # missing
    state["head.weight"] = torch.zeros(3, 3)  # unexpected
    state["linear.weight"] = torch.zeros(NUM_CLASSES, 64)  # mis-shaped (should be 5 x 128)
    return state


def test_mismatch_lists_missing_unexpected_and_misshaped():
    with pytest.raises(errors.UserError) as info:
        load_torch(_broken_state(), "small_cnn", num_classes=NUM_CLASSES)
    msg = str(info.value)
    assert "\n" not in msg
    assert "missing (1): bn2.running_var" in msg
    assert "unexpected (1): head.weight" in msg
    assert "mis-shaped (1): linear.weight (5, 64) vs expected (5, 128)" in msg


def test_wrong_num_classes_is_reported_as_misshaped():
    expected = r"mis-shaped \(2\): linear.weight .* linear.bias \(5,\) vs expected \(7,\)"
    with pytest.raises(errors.UserError, match=expected):
        load_torch(random_twin("small_cnn", NUM_CLASSES).state_dict(), "small_cnn", num_classes=7)


def test_cli_exits_2_on_mismatch(tmp_path, capsys):
    src = tmp_path / "broken.pth"
    torch.save(_broken_state(), src)
    code = cli.main(["convert", "small_cnn", str(src), str(tmp_path / "out"), "--num-classes", "5"])
    err = capsys.readouterr().err
    assert code == 2
    assert "bn2.running_var" in err and "head.weight" in err and "linear.weight" in err
    assert not (tmp_path / "out").exists()


def test_cli_verify_and_converted_model_is_a_kd_teacher(tmp_path, capsys):
    twin = random_twin("small_cnn", NUM_CLASSES, in_channels=1)
    torch.save({"model": twin.state_dict()}, tmp_path / "teacher.pt")
    out = tmp_path / "teacher"
    code = cli.main(["convert", "small_cnn", str(tmp_path / "teacher.pt"), str(out),
                                   "--num-classes", "5", "--verify"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "max |Δlogit|" in printed and "max |Δblock3|" in printed and "max |Δpooled|" in printed
    deltas = [float(line.split("=")[1].split()[0]) for line in printed.splitlines() if line.startswith("max |Δ")]
    assert len(deltas) == 5 and max(deltas) < 1e-4

    # a KD config names the converted model as its teacher (digits 0-4)
    cfg = run.load("digits/kd", ["train.steps=2", "train.progress=False"])
    cfg.teachers = [dict(workdir=str(out), classes=[0, 1, 2, 3, 4])]
    (teacher,) = run.resolve_teachers(cfg, str(tmp_path / "student"))
    x = digits("test")
    x_nchw = ((x.images[:4] - x.mean[0]) / x.std[0]).transpose(0, 3, 1, 2).astype(np.float32)
    t_logits, _ = torch_outputs(twin, x_nchw)
    with jax.default_matmul_precision("highest"):
        logits, _ = teacher(teacher.variables, jnp.asarray(x_nchw.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(logits, t_logits, atol=1e-4)
    # and the KD method takes it: its target is the converted teacher's logits
    program = run.validate(cfg).program(cfg, [teacher], None)
    assert program.data.classes == [0, 1, 2, 3, 4]
    target = teacher_logits(program.teachers, [teacher.variables], jnp.asarray(x_nchw.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(target, t_logits, atol=1e-4)


def _torchvision_model(ctor):
    """A torchvision model with random weights and random BatchNorm statistics and affine terms."""
    tv = import_torchvision()
    torch.manual_seed(0)
    model = getattr(tv.models, ctor)(num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
        # Random BatchNorm affine terms blow a deep network's logits up (ResNet-50's reach ~600, where
        # 1e-4 would be float32's own rounding); scale the classifier so they are as large as a trained
        # network's, |logit| <= 10, and 1e-4 stays an absolute tolerance that catches any conversion slip.
        head = model.fc if hasattr(model, "fc") else model.classifier[-1]
        probe = torch.from_numpy(np.random.default_rng(9).normal(size=(4, 3, 64, 64)).astype(np.float32))
        scale = 10.0 / model(probe).abs().max()
        head.weight.mul_(scale), head.bias.mul_(scale)
    return model


def _torch_logits(model, x_nchw):
    with torch.no_grad():
        return model(torch.from_numpy(x_nchw)).numpy()


@pytest.mark.parametrize("name,ctor", [("resnet18", "resnet18"), ("resnet34", "resnet34"), ("resnet50", "resnet50"),
                                       ("mobilenetv2", "mobilenet_v2")])
def test_torchvision_checkpoint_converts_exactly(name, ctor):
    """A checkpoint made by code jka did not write: torchvision's own models."""
    model = _torchvision_model(ctor)
    variables = load_torch(model.state_dict(), name, num_classes=NUM_CLASSES)
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    logits, _ = flax_outputs(name, variables, x)
    np.testing.assert_allclose(logits, _torch_logits(model, x), rtol=0, atol=1e-4)


def test_torchvision_training_checkpoint_through_the_cli(tmp_path, capsys):
    """``jka convert`` on the file a torchvision training script saves (DataParallel, nested dict):
    --verify runs jka's own PyTorch ResNet-18 with those weights, and the converted checkpoint loads
    as a teacher whose logits are torchvision's."""
    model = _torchvision_model("resnet18")
    src = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 90, "model": {f"module.{k}": v for k, v in model.state_dict().items()}}, src)
    out = tmp_path / "teacher"
    code = cli.main(["convert", "resnet18", str(src), str(out), "--num-classes", str(NUM_CLASSES), "--verify",
                     "--image-size", "64"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    deltas = [float(line.split("=")[1].split()[0]) for line in printed.splitlines() if line.startswith("max |Δ")]
    assert deltas and max(deltas) < 1e-4, printed

    cfg = run.load("digits/kd", ["train.steps=2", "train.progress=False"])
    cfg.teachers = [dict(workdir=str(out), classes=list(range(NUM_CLASSES)))]
    (teacher,) = run.resolve_teachers(cfg, str(tmp_path / "student"))
    x = np.random.default_rng(2).normal(size=(2, 3, 64, 64)).astype(np.float32)
    with jax.default_matmul_precision("highest"):
        logits, _ = teacher(teacher.variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(logits, _torch_logits(model, x), rtol=0, atol=1e-4)
