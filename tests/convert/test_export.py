"""Flax → PyTorch export (`jka export WORKDIR --to torch OUT`), for every architecture with a twin.

Random Flax variables (BatchNorm statistics and affine terms far from their initial values) are
exported, loaded into jka's PyTorch twin, run next to the Flax model on the same batch, and
converted back through `jka convert`'s own path: outputs agree within 1e-4 of the logit scale and the
variables come back bit for bit.
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jka.convert import bridge, export_torch, families, load_torch, torch_module  # noqa: E402
from jka.convert.export import torch_export, torch_state_dict, twin  # noqa: E402
from jka.convert.load import target_shapes  # noqa: E402
from jka.convert.torch_models import torch_available, torch_create  # noqa: E402
from jka.errors import UserError  # noqa: E402
from jka.train.export import export_model  # noqa: E402
from tests.reliability.test_exported_models import refused, snapshot  # noqa: E402

QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
GEN_KW = {"nz": 16, "ngf": 4, "img_size": 8, "nc": 1}
# name, outputs, input side, input channels, kwargs: the smallest input each architecture takes
CASES = [
    ("small_cnn", 5, 8, 1, {"width": 0.25}),
    ("cifar_resnet18", 5, 8, 3, {}),
    ("cifar_resnet34", 5, 8, 1, {}),
    ("wrn16_1", 5, 8, 3, {}),
    ("wrn16_2", 5, 8, 3, {}),
    ("wrn40_1", 5, 8, 3, {}),
    ("wrn40_2", 5, 8, 2, {}),
    ("vgg8_bn", 5, 8, 3, {}),
    ("vgg11_bn", 5, 8, 3, {}),
    ("vgg13_bn", 5, 8, 1, {}),
    ("mobilenetv2", 5, 16, 3, {"stem_stride": 1}),
    ("mobilenetv2_x0_5", 5, 16, 3, {"stem_stride": 1}),
    ("resnet18", 5, 16, 3, {}),
    ("resnet34", 5, 16, 1, {}),
    ("resnet50", 5, 16, 3, {}),
    *((name, 5, 8, 3, {}) for name in ("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56",
                                       "resnet110", "resnet32x4", "cifar_resnet50", "vgg16_bn", "vgg19_bn")),
    ("resnet8x4", 5, 8, 3, {}),
    ("mobile_half", 5, 8, 3, {}),
    ("shufflev1", 5, 8, 3, {}),
    ("shufflev2", 5, 8, 3, {}),
    ("generator", 0, None, 3, GEN_KW),
    ("large_generator", 0, None, 3, {**GEN_KW, "img_size": 16, "nc": 3}),
    ("vgg16_teacher", 5, 8, 3, {"width": 0.125}),
    ("vgg16_graft", 5, 8, 3, {"width": 0.125}),
    ("segnet", 4, 32, 3, {"width": 0.0625}),
    ("branchy_segnet", 5, 32, 3, {"width": 0.0625, "task_channels": [4, 1], "branch_points": [2, 5]}),
]


def random_variables(name, n, size, in_ch, kw, seed=0):
    """Flax variables of every shape ``name`` has: kernels ~ N(0, 1/fan-in), biases and BatchNorm
    shifts small, BatchNorm scales, means and variances far from 1, 0 and 1."""
    rng = np.random.default_rng(seed)
    shapes = target_shapes(name, n, kw, in_ch)
    draw = {"kernel": lambda s: rng.normal(size=s) / np.sqrt(np.prod(s[:-1])),
            "scale": lambda s: rng.uniform(0.5, 1.5, s), "mean": lambda s: rng.uniform(-0.5, 0.5, s),
            "var": lambda s: rng.uniform(0.5, 1.5, s)}
    variables = {}
    for coll, leaves in shapes.items():
        for path, shape in leaves.items():
            node = variables.setdefault(coll, {})
            for p in path[:-1]:
                node = node.setdefault(p, {})
            node[path[-1]] = draw.get(path[-1], lambda s: rng.uniform(-0.2, 0.2, s))(shape).astype(np.float32)
    return variables


def both_outputs(name, n, size, in_ch, kw, variables, net):
    """(Flax, PyTorch) outputs and features (NHWC) on one random batch; per-task outputs joined."""
    x = families.example_input(name, kw, in_ch, size or 8, 2, np.random.default_rng(1))
    with torch.no_grad():
        t_out, t_feats = bridge._split(net(torch.from_numpy(x)))
    model = families.flax_model(name, n, kw)
    x_flax = jnp.asarray(families.to_flax_input(x))
    with jax.default_matmul_precision("highest"):  # compiled without XLA's slow passes: the cheapest way here
        apply = jax.jit(lambda v, x: bridge._split(model.apply(v, x, train=False))).lower(variables, x_flax)
        out, feats = apply.compile(QUICK_COMPILE)(variables, x_flax)
    nhwc = bridge._nhwc
    return (np.asarray(out), feats), (nhwc(t_out.numpy()), {k: nhwc(v.numpy()) for k, v in t_feats.items()})


def close(a, b, what):
    """Equal within 1e-4 of the scale (max(1, max |b|)), as `jka convert --verify` accepts."""
    assert a.shape == b.shape, what
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * max(1.0, float(np.abs(b).max())), err_msg=what)


def model_info(case) -> dict:
    """The model.json fields of a model of ``case`` trained on normalised images."""
    name, n, size, in_ch, kw = case
    return {"arch": name, "num_classes": n, "classes": list(range(n)), "kwargs": kw, "mean": [0.5] * in_ch,
            "std": [0.25] * in_ch, "image_shape": families.exported_image_shape(name, kw, size or 8, in_ch)}


def export_random(root, case):
    """Random variables of ``case`` exported as ``root/work/model`` (what `jka train` leaves)."""
    info = model_info(case)
    variables = random_variables(*case)
    export_model(str(root / "work" / "model"), info.pop("arch"), info.pop("num_classes"), variables, **info)
    return variables


def check_twin_and_back(case, variables, net):
    """The twin computes what jka computes, and `jka convert`'s reading of its state dict gives the
    variables back bit for bit."""
    name, n, size, in_ch, kw = case
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert all(m.num_batches_tracked.dtype == torch.int64 and m.num_batches_tracked.ndim == 0 for m in bns)
    (out, feats), (t_out, t_feats) = both_outputs(name, n, size, in_ch, kw, variables, net)
    close(out, t_out, "output")
    assert set(feats) == set(t_feats)
    for k in t_feats:
        close(np.asarray(feats[k]), t_feats[k], k)
    again = load_torch(net.state_dict(), name, n, kw, in_channels=in_ch)
    assert jax.tree.structure(again) == jax.tree.structure(variables)
    jax.tree.map(np.testing.assert_array_equal, again, variables)


def test_every_twin_is_listed_for_export():
    """families.TWINS (read without torch) names exactly the twins, each with its class."""
    assert sorted(families.TWINS) == torch_available()
    with torch.device("meta"):  # built, not initialised
        options = {c[0]: c[4] for c in CASES}
        for name, cls in families.TWINS.items():
            assert type(torch_create(name, 5, **options.get(name, {}))).__name__ == cls
    assert sorted(c[0] for c in CASES) == torch_available()  # the round trip below runs every twin


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_export_runs_in_the_twin_and_converts_back(case):
    """In memory (no file of a ResNet-50 written): the state dict and torch.json's fields."""
    name, n, _, in_ch, kw = case
    variables = random_variables(*case)
    state, described = torch_export(model_info(case), variables)
    assert described["twin"] == f"jka.convert.torch_models.{families.TWINS[name]}"
    assert described["kwargs"] == {**kw, **({"in_channels": in_ch} if in_ch != 3 else {})}
    check_twin_and_back(case, variables, twin(described, {k: torch.from_numpy(v) for k, v in state.items()}))


@pytest.mark.parametrize("case", [CASES[0], CASES[15]], ids=["small_cnn", "generator"])
def test_export_files_load_with_torch_module(tmp_path, case):
    """Through the files: a workdir's model/ → model.safetensors + torch.json → torch_module."""
    variables = export_random(tmp_path, case)
    result = export_torch(str(tmp_path / "work"), str(tmp_path / "torch"), log=lambda *a: None)
    described = json.loads((tmp_path / "torch" / "torch.json").read_text())
    assert result == {"out": str(tmp_path / "torch"), **described}
    assert described["source"] == str(tmp_path / "work" / "model")
    check_twin_and_back(case, variables, torch_module(str(tmp_path / "torch")))


def test_keys_are_the_reference_names_and_bn_statistics_are_kept():
    """A CIFAR ResNet's exported tensors under DAFL/CMI's names, laid out as PyTorch's, one by one."""
    variables = random_variables(*CASES[1])
    state = torch_state_dict("cifar_resnet18", variables)
    with torch.device("meta"):
        assert set(state) == set(torch_create("cifar_resnet18", 5).state_dict())
    p, bs = variables["params"], variables["batch_stats"]
    np.testing.assert_array_equal(state["layer2.0.shortcut.0.weight"],
                                  p["layer2_0"]["shortcut_0"]["kernel"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state["linear.weight"], p["linear"]["kernel"].T)
    np.testing.assert_array_equal(state["layer3.1.bn2.running_var"], bs["layer3_1"]["bn2"]["var"])
    np.testing.assert_array_equal(state["bn1.weight"], p["bn1"]["scale"])
    assert state["layer1.0.bn1.num_batches_tracked"].dtype == np.int64


# -- errors: one line, exit 2, nothing written -----------------------------------------------------
def export_argv(src, out):
    return ["export", str(src), "--to", "torch", str(out)]


@pytest.mark.parametrize("kind,needle", [
    ("file", "is a file; give a new directory"),
    ("occupied", "is no earlier `jka export` output"),
    ("no_parent", "does not exist; create it first"),
    ("no_model", "no exported model at"),
    ("no_twin", "has no PyTorch twin in jka"),
])
def test_export_refuses_before_any_work(tmp_path, capsys, kind, needle):
    export_random(tmp_path, CASES[0])
    src, out = tmp_path / "work", tmp_path / "out"
    if kind == "file":
        out.write_text("notes")
    elif kind == "occupied":
        out.mkdir()
        (out / "notes.txt").write_text("keep me")
    elif kind == "no_parent":
        out = tmp_path / "missing" / "out"
    elif kind == "no_model":
        src = tmp_path / "empty_run"
        src.mkdir()
    else:  # a CIFAR ResNet-8 (no PyTorch twin)
        export_model(str(tmp_path / "r8" / "model"), "cifar_resnet8", 5,
                     random_variables("cifar_resnet8", 5, 8, 3, {}), kwargs={})
        src = tmp_path / "r8"
    before = snapshot(tmp_path)
    refused(capsys, export_argv(src, out), needle)
    assert snapshot(tmp_path) == before and not (tmp_path / "missing").exists()


def test_export_replaces_its_own_earlier_output(tmp_path):
    export_random(tmp_path, CASES[0])
    for _ in range(2):
        export_torch(str(tmp_path / "work"), str(tmp_path / "out"), log=lambda *a: None)
    assert sorted(os.listdir(tmp_path / "out")) == ["model.safetensors", "torch.json"]


def test_torch_module_refuses_what_is_no_whole_export(tmp_path):
    export_random(tmp_path, CASES[0])
    with pytest.raises(UserError, match="no PyTorch export at"):
        torch_module(str(tmp_path / "work"))
    export_torch(str(tmp_path / "work"), str(tmp_path / "out"), log=lambda *a: None)
    weights = tmp_path / "out" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])  # cut short
    with pytest.raises(UserError, match="cannot load .*model.safetensors into jka's PyTorch small_cnn"):
        torch_module(str(tmp_path / "out"))
