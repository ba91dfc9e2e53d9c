"""PyTorch → Flax conversion of the data-free generators, VGG16 (graft teacher and student), SegNet
and the branchy SegNet student.

Each family: a randomly initialised PyTorch twin with random BN running statistics and affine
parameters is converted; Flax's outputs and features equal PyTorch's within 1e-4 (float32, highest
matmul precision). Mismatches end in one UserError listing the keys.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jka import errors  # noqa: E402
from jka.convert import bridge, families, load_torch  # noqa: E402
from jka.train.export import load_model  # noqa: E402
from tests.convert.twins import random_twin  # noqa: E402

GEN_KW = {"nz": 16, "ngf": 4, "img_size": 8, "nc": 1}
# name, num_classes, input side, kwargs
FAMILIES = [
    ("generator", 1, None, GEN_KW),
    ("large_generator", 1, None, {**GEN_KW, "img_size": 16, "nc": 3}),
    ("vgg16_teacher", 5, 32, {"width": 0.125}),
    ("vgg16_graft", 5, 16, {"width": 0.125}),
    ("segnet", 4, 32, {"width": 0.125}),
    ("branchy_segnet", 5, 32, {"width": 0.0625, "task_channels": [4, 1], "branch_points": [2, 5]}),
]


def _split(out):
    """(output, features); the branchy student's per-task outputs joined along the channels."""
    out, feats = out if isinstance(out, tuple) else (out, {})
    if isinstance(out, tuple):
        out = torch.cat(out, dim=1) if isinstance(out[0], torch.Tensor) else jnp.concatenate(out, axis=-1)
    return out, feats


def _nhwc(a):
    a = np.asarray(a)
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def run_both(name, num_classes, size, kw, twin, variables, train=False, batch=3):
    x = families.example_input(name, kw, 3, size, batch, np.random.default_rng(1))
    twin.train(train)
    with torch.no_grad():
        t_out, t_feats = _split(twin(torch.from_numpy(x)))
    model = families.flax_model(name, num_classes, kw)
    with jax.default_matmul_precision("highest"):
        if train:
            out, updates = model.apply(variables, jnp.asarray(families.to_flax_input(x)), train=True,
                                       mutable=["batch_stats"])
        else:
            out, updates = model.apply(variables, jnp.asarray(families.to_flax_input(x)), train=False), None
    out, feats = _split(out)
    return (_nhwc(t_out.numpy()), {k: _nhwc(v.numpy()) for k, v in t_feats.items()}), (np.asarray(out), feats), updates


@pytest.mark.parametrize("name,num_classes,size,kw", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_family_converts_exactly(name, num_classes, size, kw):
    twin = random_twin(name, num_classes, **kw)
    variables = load_torch(twin.state_dict(), name, num_classes=num_classes, kwargs=kw)
    (t_out, t_feats), (out, feats), _ = run_both(name, num_classes, size, kw, twin, variables)
    assert out.shape == t_out.shape
    np.testing.assert_allclose(out, t_out, rtol=0, atol=1e-4)
    assert set(feats) == set(t_feats)
    for k in t_feats:
        np.testing.assert_allclose(feats[k], t_feats[k], rtol=1e-4, atol=1e-4, err_msg=k)
    if families.is_generator(name):  # a real image batch in [0, 1], not a constant
        assert out.shape == (3, kw["img_size"], kw["img_size"], kw["nc"]) and out.std() > 1e-3


@pytest.mark.parametrize("name", ["generator", "large_generator"])
def test_generator_train_mode_uses_batch_statistics_like_pytorch(name):
    kw = FAMILIES[0][3] if name == "generator" else FAMILIES[1][3]
    twin = random_twin(name, 1, **kw)
    variables = load_torch(twin.state_dict(), name, num_classes=1, kwargs=kw)
    old_mean = twin.conv_blocks[0].running_mean.clone()
    (t_out, _), (out, _), updates = run_both(name, 1, None, kw, twin, variables, train=True, batch=8)
    np.testing.assert_allclose(out, t_out, rtol=0, atol=1e-4)
    # the running means move the same way (momentum 0.1 in PyTorch = 0.9 in Flax); the running
    # variances do not compare exactly: PyTorch averages the unbiased batch variance, Flax the biased one
    assert not np.allclose(old_mean.numpy(), twin.conv_blocks[0].running_mean.numpy())
    np.testing.assert_allclose(updates["batch_stats"]["bn0"]["mean"], twin.conv_blocks[0].running_mean.numpy(),
                               rtol=0, atol=1e-5)


def test_generator_linear_rows_are_reordered_channel_major_to_channel_last():
    """l1's output (c, i, j) in PyTorch becomes (i, j, c) in Flax: check one entry by hand."""
    twin = random_twin("generator", 1, **GEN_KW)
    variables = load_torch(twin.state_dict(), "generator", num_classes=1, kwargs=GEN_KW)
    w = twin.l1[0].weight.detach().numpy()  # (c0 * s * s, nz) with c0 = 16, s = 2
    kernel = variables["params"]["l1"]["kernel"]  # (nz, s * s * c0)
    c, i, j, s, c0 = 5, 1, 0, 2, 16
    np.testing.assert_array_equal(kernel[:, (i * s + j) * c0 + c], w[c * s * s + i * s + j])


@pytest.mark.parametrize("name,num_classes,size,kw", FAMILIES[2:5], ids=[f[0] for f in FAMILIES[2:5]])
def test_wrong_num_classes_lists_the_classifier_keys(name, num_classes, size, kw):
    state = random_twin(name, num_classes, **kw).state_dict()
    with pytest.raises(errors.UserError) as info:
        load_torch(state, name, num_classes=num_classes + 2, kwargs=kw)
    msg = str(info.value)
    assert "\n" not in msg and "mis-shaped (2)" in msg
    last = "classifier.2" if name.startswith("vgg16") else "head"
    assert f"{last}.weight" in msg and f"{last}.bias" in msg


@pytest.mark.parametrize("name,num_classes,size,kw", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_missing_and_unexpected_keys_are_named_in_pytorch_terms(name, num_classes, size, kw):
    state = dict(random_twin(name, num_classes, **kw).state_dict())
    gone = {"generator": "conv_blocks.3.running_var", "large_generator": "conv_blocks.10.weight",
            "vgg16_teacher": "features.28.bias", "vgg16_graft": "adapters_in.4.weight",
            "segnet": "decoder.3.4.running_mean", "branchy_segnet": "tasks.1.adaptors.0.excite.bias"}[name]
    del state[gone]
    state["extra.0.weight"] = torch.zeros(2, 2)
    with pytest.raises(errors.UserError) as info:
        load_torch(state, name, num_classes=num_classes, kwargs=kw)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"missing (1): {gone}" in msg and "unexpected (1): extra.0.weight" in msg


def test_generator_with_wrong_options_is_reported():
    state = random_twin("generator", 1, **GEN_KW).state_dict()
    with pytest.raises(errors.UserError, match=r"mis-shaped .*l1\.0\.weight"):
        load_torch(state, "generator", num_classes=1, kwargs={**GEN_KW, "ngf": 8})


@pytest.mark.parametrize("name,num_classes,size,kw", [FAMILIES[0], FAMILIES[4]], ids=["generator", "segnet"])
def test_convert_with_verify_writes_a_loadable_model(tmp_path, name, num_classes, size, kw):
    twin = random_twin(name, num_classes, **kw)
    src = tmp_path / "m.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in twin.state_dict().items()}}, src)
    lines = []
    result = bridge.convert(name, str(src), str(tmp_path / "out"), num_classes, verify=True, kwargs=kw,
                            log=lines.append)
    report = result["verify"]
    assert report["logits"] < 1e-4 and all(d < 1e-4 for d in report["features"].values())
    assert "max |Δlogit|" in lines[0]
    variables, info = load_model(str(tmp_path / "out"))
    assert info["arch"] == name and info["kwargs"] == kw
    direct = load_torch(twin.state_dict(), name, num_classes=num_classes, kwargs=kw)
    jax.tree.map(np.testing.assert_array_equal, direct, variables)
    if name == "generator":
        assert info["image_shape"] == [8, 8, 1]
