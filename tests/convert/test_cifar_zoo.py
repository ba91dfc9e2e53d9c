"""The CIFAR-100 KD benchmark's zoo (RepDistiller / mdistiller ``cifar_teachers.tar`` and students):
each PyTorch twin, with the benchmark's key names, random weights and random BN statistics and affine
parameters, saved as the benchmark saves it (``{'model': state_dict, ...}``, DataParallel prefixes),
converts under the benchmark's name into jka's model, whose logits and features equal PyTorch's
(float32, 1e-4 relative to the logit scale)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jka import models  # noqa: E402
from jka.convert import bridge, families, load_torch  # noqa: E402
from jka.convert.load import target_shapes  # noqa: E402
from jka.train.export import load_model  # noqa: E402
from tests.convert.twins import random_twin  # noqa: E402

# the benchmark's name -> jka's
ZOO = {"resnet8": "resnet8", "resnet14": "resnet14", "resnet20": "resnet20", "resnet32": "resnet32",
       "resnet44": "resnet44", "resnet56": "resnet56", "resnet110": "resnet110", "resnet8x4": "resnet8x4",
       "resnet32x4": "resnet32x4", "ResNet50": "cifar_resnet50", "vgg8": "vgg8_bn", "vgg11": "vgg11_bn",
       "vgg13": "vgg13_bn", "vgg16": "vgg16_bn", "vgg19": "vgg19_bn", "MobileNetV2": "mobile_half",
       "mobile_half": "mobile_half", "ShuffleV1": "shufflev1", "ShuffleV2": "shufflev2",
       "cifar100_resnet56": "resnet56"}  # the last: chenyaofo/pytorch-cifar-models' hub name
NUM_CLASSES = 100
# compared numerically: every structure (16-wide stages of 3 blocks; the x4 widths with one block a stage
# and a downsample in stage 1; the bottleneck; VGG blocks of one conv and of several; the three mobile
# students); the other depths and VGGs run the same code and have their keys and shapes checked.
NUMERIC = ["resnet20", "resnet8x4", "ResNet50", "vgg8", "vgg13", "MobileNetV2", "ShuffleV1", "ShuffleV2"]
KEYS_ONLY = ["resnet8", "resnet14", "resnet32", "resnet44", "resnet56", "resnet110", "resnet32x4", "vgg11", "vgg16",
             "vgg19", "cifar100_resnet56"]
COMPILED = ("mobile_half", "shufflev1", "shufflev2")  # many distinct shapes: faster compiled than op by op


def as_distributed(state):
    """A benchmark checkpoint: the weights under 'model' (DataParallel-prefixed), beside other entries."""
    return {"epoch": 240, "accuracy": torch.tensor(71.5), "model": {f"module.{k}": v for k, v in state.items()}}


def outputs(twin, jka_name, variables, batch=2):
    x = np.random.default_rng(1).normal(size=(batch, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        t_logits, t_feats = twin(torch.from_numpy(x))
    model = models.create(jka_name, NUM_CLASSES)
    apply = lambda v, x: model.apply(v, x, train=False)
    with jax.default_matmul_precision("highest"):
        logits, feats = (jax.jit(apply) if jka_name in COMPILED else apply)(variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
    nhwc = {k: v.numpy().transpose(0, 2, 3, 1) if v.ndim == 4 else v.numpy() for k, v in t_feats.items()}
    return (t_logits.numpy(), nhwc), (np.asarray(logits), {k: np.asarray(v) for k, v in feats.items()})


@pytest.mark.parametrize("zoo_name", NUMERIC)
def test_benchmark_checkpoint_converts_exactly(zoo_name):
    jka_name = ZOO[zoo_name]
    twin = random_twin(jka_name, NUM_CLASSES)
    variables = load_torch(as_distributed(twin.state_dict()), zoo_name, NUM_CLASSES)
    (t_logits, t_feats), (logits, feats) = outputs(twin, jka_name, variables)
    scale = max(1.0, float(np.abs(t_logits).max()))
    assert np.abs(logits - t_logits).max() <= 1e-4 * scale, zoo_name
    assert set(feats) == set(t_feats) and {"stem", "pooled"} <= set(feats)
    for k, t in t_feats.items():
        assert feats[k].shape == t.shape, k
        assert np.abs(feats[k] - t).max() <= 1e-4 * max(1.0, float(np.abs(t).max())), k


@pytest.mark.parametrize("zoo_name", KEYS_ONLY)
def test_benchmark_checkpoint_keys_and_shapes_convert(zoo_name):
    twin = random_twin(ZOO[zoo_name], NUM_CLASSES)
    variables = load_torch(as_distributed(twin.state_dict()), zoo_name, NUM_CLASSES)
    target = target_shapes(ZOO[zoo_name], NUM_CLASSES)  # every Flax leaf, filled with the right shape
    flat = {c: {tuple(k.key for k in p): v.shape for p, v in jax.tree_util.tree_leaves_with_path(variables[c])}
            for c in target}
    assert flat == target
    kernel = variables["params"]["layer2_0"]["shortcut_0"]["kernel"] if "resnet" in zoo_name else None
    if kernel is not None:  # the renamed downsample conv, OIHW -> HWIO
        np.testing.assert_array_equal(kernel, twin.layer2[0].downsample[0].weight.detach().numpy().transpose(2, 3, 1, 0))


def test_convert_under_the_benchmark_name_writes_jka_names(tmp_path):
    twin = random_twin("resnet8x4", NUM_CLASSES)
    src = tmp_path / "ckpt_epoch_240.pth"
    torch.save(as_distributed(twin.state_dict()), src)
    result = bridge.convert("resnet8x4", str(src), str(tmp_path / "out"), NUM_CLASSES, verify=True, log=lambda _: None)
    assert bridge.verify_ok(result["verify"])
    _, info = load_model(str(tmp_path / "out"))
    assert info["arch"] == "resnet8x4" and info["image_shape"] == [32, 32, 3]
    bridge.convert("ShuffleV1", _saved(tmp_path, "shufflev1"), str(tmp_path / "v1"), NUM_CLASSES, log=lambda _: None)
    assert load_model(str(tmp_path / "v1"))[1]["arch"] == "shufflev1"


def _saved(tmp_path, jka_name):
    path = tmp_path / f"{jka_name}.pth"
    torch.save(as_distributed(random_twin(jka_name, NUM_CLASSES).state_dict()), path)
    return str(path)


def test_every_benchmark_name_is_a_jka_model():
    assert {families.arch_name(n) for n in families.ZOO_NAMES} <= set(models.available())
    assert set(ZOO.values()) <= set(models.available())


def test_each_zoo_checkpoint_records_the_normalisation_it_was_trained_with(tmp_path):
    """RepDistiller's / mdistiller's loaders normalise CIFAR-100 with (0.5071, 0.4867, 0.4408) /
    (0.2675, 0.2565, 0.2761); chenyaofo's hub models were trained with its recipe's statistics; a name
    that says nothing records nothing unless --mean/--std are given, and those override the name's."""
    src = _saved(tmp_path, "resnet8")
    expect = {"resnet8": ([0.5071, 0.4867, 0.4408], [0.2675, 0.2565, 0.2761]),
              "cifar10_resnet20": ([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]),
              "cifar100_resnet20": ([0.5070, 0.4865, 0.4409], [0.2673, 0.2564, 0.2761])}
    for name, (mean, std) in expect.items():
        twin = src if name == "resnet8" else _saved(tmp_path, "resnet20")
        bridge.convert(name, twin, str(tmp_path / name), NUM_CLASSES, log=lambda _: None)
        info = load_model(str(tmp_path / name))[1]
        assert (info["mean"], info["std"]) == (mean, std), name
    bridge.convert("resnet8", src, str(tmp_path / "given"), NUM_CLASSES, normalisation=([0.5] * 3, [0.25] * 3),
                   log=lambda _: None)
    assert load_model(str(tmp_path / "given"))[1]["mean"] == [0.5] * 3
    bridge.convert("cifar_resnet18", _saved(tmp_path, "cifar_resnet18"), str(tmp_path / "plain"), NUM_CLASSES,
                   log=lambda _: None)
    assert "mean" not in load_model(str(tmp_path / "plain"))[1]


@pytest.mark.parametrize("mean,std,says", [
    ("0.5,0.5", "0.2,0.2", "one value per input channel (3), not 2 and 2"),
    ("0.5,0.5,0.5", "0.2,0,0.2", "--std positive"),
    ("0.5,0.5,x", "0.2,0.2,0.2", "--mean must be comma-separated numbers"),
    ("0.5,0.5,0.5", None, "give --mean and --std together")])
def test_a_bad_normalisation_is_one_line_and_writes_nothing(tmp_path, capsys, mean, std, says):
    from jka import cli

    args = ["convert", "resnet8", _saved(tmp_path, "resnet8"), str(tmp_path / "out"), "--num-classes", "100",
            "--mean", mean] + (["--std", std] if std else [])
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert not (tmp_path / "out").exists()
