"""timm networks through ``jka convert timm:NAME``: each family converts exactly against timm's own
module (random weights, random BatchNorm statistics, float32, highest matmul precision), the
normalisation of timm's pretrained configuration lands in model.json, and an unsupported name or
option is refused in one line before the checkpoint is read."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jka import errors  # noqa: E402
from jka.convert import bridge, families, load_torch, timm_models  # noqa: E402
from jka.train.export import load_model  # noqa: E402

try:
    timm = timm_models.import_timm()
except errors.UserError:
    pytest.skip("timm is not installed (pip install -e '.[dev]' installs it)", allow_module_level=True)

NUM_CLASSES = 5
TOLERANCE = 1e-4  # max |Δlogit| relative to max(1, max |logit|)
# timm name, options (a ViT's img_size, so that it runs on 32x32 images)
CASES = [("resnet50", {}), ("mobilenetv2_050", {}), ("efficientnet_b0", {}),
         ("deit_tiny_distilled_patch16_224", {"img_size": 32})]


def random_timm(name, kwargs, seed=0):
    """timm's ``name`` with random weights and random BatchNorm affine parameters and statistics."""
    torch.manual_seed(seed)
    model = timm_models.create(name, NUM_CLASSES, kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            elif isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm)) and m.bias is not None:
                m.bias.uniform_(-0.2, 0.2)  # timm initialises these at zero
    return model


@pytest.mark.parametrize("name,kwargs", CASES, ids=[c[0] for c in CASES])
def test_timm_network_converts_exactly(name, kwargs):
    model = random_timm(name, kwargs)
    _, arch, jka_kwargs = timm_models.resolve(f"timm:{name}", kwargs)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    variables = load_torch(timm_models.rename_state(name, state), arch, NUM_CLASSES, jka_kwargs)
    x = np.random.default_rng(1).normal(size=(1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    net = families.flax_model(arch, NUM_CLASSES, jka_kwargs)
    with jax.default_matmul_precision("highest"):
        logits, feats = jax.jit(lambda v, x: net.apply(v, x, train=False))(variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
    scale = float(np.abs(want).max())
    assert scale > 0.1  # logits of a network that computes something
    assert float(np.abs(np.asarray(logits) - want).max()) <= TOLERANCE * max(1.0, scale)
    if arch == "vit":  # every token after the final norm (unit scale), and the class token's head alone
        with torch.no_grad():
            tokens = model.forward_features(torch.from_numpy(x))
            cls = model.head(tokens[:, 0])
        np.testing.assert_allclose(feats["tokens"], tokens.numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(feats["logits_cls"], cls.numpy(), rtol=0, atol=TOLERANCE * max(1.0, scale))


def test_convert_timm_vit_with_verify_records_timm_normalisation(tmp_path):
    model = random_timm("vit_tiny_patch16_224", {"img_size": 32})
    src = tmp_path / "vit.pth"
    torch.save(model.state_dict(), src)
    lines = []
    result = bridge.convert("timm:vit_tiny_patch16_224", str(src), str(tmp_path / "out"), NUM_CLASSES, verify=True,
                            kwargs={"img_size": 32}, log=lines.append)
    assert bridge.verify_ok(result["verify"]) and result["verify"]["max_abs_logit"] > 0.1
    variables, info = load_model(str(tmp_path / "out"))
    cfg = timm.models.get_pretrained_cfg("vit_tiny_patch16_224")
    assert info["arch"] == "vit" and info["converted_from"] == "timm:vit_tiny_patch16_224"
    assert info["mean"] == list(cfg.mean) and info["std"] == list(cfg.std) and info["image_shape"] == [32, 32, 3]
    assert info["kwargs"] == {"patch_size": 16, "embed_dim": 192, "depth": 12, "num_heads": 3, "img_size": 32}
    np.testing.assert_array_equal(variables["params"]["cls_token"], model.cls_token.detach().numpy())
    assert "as vit" in lines[-1]


def test_timm_mobilenetv2_keys_become_torchvision_keys():
    state = {k: v.numpy() for k, v in timm_models.create("mobilenetv2_100", NUM_CLASSES, {}).state_dict().items()}
    renamed = timm_models.rename_state("mobilenetv2_100", state)
    assert renamed["features.1.conv.0.0.weight"] is state["blocks.0.0.conv_dw.weight"]  # stage 0: depthwise first
    assert renamed["features.2.conv.1.0.weight"] is state["blocks.1.0.conv_dw.weight"]  # expand, then depthwise
    assert renamed["features.17.conv.3.running_var"] is state["blocks.6.0.bn3.running_var"]
    assert renamed["features.18.0.weight"] is state["conv_head.weight"]
    assert renamed["classifier.1.bias"] is state["classifier.bias"]
    assert len(renamed) == len(state)


def test_unsupported_timm_model_or_option_is_one_line_before_reading(tmp_path):
    missing = str(tmp_path / "none.pth")  # never read: the name is refused first
    with pytest.raises(errors.UserError) as info:
        bridge.convert("timm:convnext_tiny", missing, str(tmp_path / "out"), NUM_CLASSES)
    msg = str(info.value)
    assert "\n" not in msg and "'convnext_tiny' is not one jka converts" in msg and "efficientnet_b0" in msg
    with pytest.raises(errors.UserError, match=r"timm:resnet18: it takes no option"):
        bridge.convert("timm:resnet18", missing, str(tmp_path / "out"), NUM_CLASSES, kwargs={"img_size": 32})
    with pytest.raises(errors.UserError, match=r"takes only img_size"):
        bridge.convert("timm:vit_tiny_patch16_224", missing, str(tmp_path / "out"), NUM_CLASSES, kwargs={"depth": 2})
    with pytest.raises(errors.UserError, match=r"--image-size 64 differs from the ViT's img_size 32"):
        bridge.convert("timm:vit_tiny_patch16_224", missing, str(tmp_path / "out"), NUM_CLASSES, kwargs={"img_size": 32},
                       image_size=64)
    assert not (tmp_path / "out").exists()

