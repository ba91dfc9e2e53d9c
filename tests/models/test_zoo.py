"""Model zoo: parameter counts, names, feature shapes, dtypes. Shapes come from ``jax.eval_shape``."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import errors, models
from jka.convert import families
from jka.train import export

# name -> input side used for the shape checks
SIZES = {
    "cifar_resnet18": 32, "cifar_resnet34": 32,
    "wrn16_1": 32, "wrn16_2": 32, "wrn40_1": 32, "wrn40_2": 32,
    "vgg8_bn": 32, "vgg11_bn": 32, "vgg13_bn": 32,
    "mobilenetv2": 224, "mobilenetv2_x0_5": 224,
    "resnet18": 224, "resnet34": 224, "resnet50": 224,
    "small_cnn": 8,
}

# name -> {feature: (H, W, C)} at the size above, plus the pooled width
EXPECTED_FEATURES = {
    "cifar_resnet18": {"stem": (32, 32, 64), "layer1": (32, 32, 64), "layer2": (16, 16, 128),
                       "layer3": (8, 8, 256), "layer4": (4, 4, 512), "pooled": (512,)},
    "wrn40_2": {"block1": (32, 32, 32), "block2": (16, 16, 64), "block3": (8, 8, 128), "pooled": (128,)},
    "wrn16_1": {"block1": (32, 32, 16), "block2": (16, 16, 32), "block3": (8, 8, 64), "pooled": (64,)},
    "vgg8_bn": {"stem": (32, 32, 64), "block1": (16, 16, 128), "block2": (8, 8, 256), "block3": (4, 4, 512),
                "block4": (4, 4, 512), "pooled": (512,)},
    "mobilenetv2": {"stage1": (112, 112, 16), "stage2": (56, 56, 24), "stage3": (28, 28, 32),
                    "stage4": (14, 14, 96), "stage5": (7, 7, 1280), "pooled": (1280,)},
    "mobilenetv2_x0_5": {"stage1": (112, 112, 8), "stage2": (56, 56, 16), "stage3": (28, 28, 16),
                         "stage4": (14, 14, 48), "stage5": (7, 7, 1280), "pooled": (1280,)},
    "resnet50": {"stem": (56, 56, 64), "layer1": (56, 56, 256), "layer2": (28, 28, 512), "layer3": (14, 14, 1024),
                 "layer4": (7, 7, 2048), "pooled": (2048,)},
    "small_cnn": {"block1": (8, 8, 32), "block2": (8, 8, 64), "block3": (4, 4, 128), "pooled": (128,)},
}

PUBLISHED = [("cifar_resnet18", 10, 11_173_962), ("resnet18", 1000, 11_689_512),
             ("resnet50", 1000, 25_557_032), ("mobilenetv2", 1000, 3_504_872)]


def _abstract_init(name, num_classes, size=None, dtype=jnp.float32, **kw):
    return _abstract_init_cached(name, num_classes, size or SIZES[name], dtype, tuple(sorted(kw.items())))


@functools.lru_cache(maxsize=None)
def _abstract_init_cached(name, num_classes, size, dtype, kw):
    model = models.create(name, num_classes, dtype=dtype, **dict(kw))
    x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape, x.dtype)))
    return model, variables, x


def _count(tree):
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def _flat(tree):
    return {tuple(k.key for k in path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


EXTRA_MODELS = ("cifar_resnet8", "cifar_resnet32", "vgg16_teacher", "vgg16_graft", "segnet", "branchy_segnet",
                # timm's families: tests/convert/test_timm.py
                "efficientnet_b0", "vit",
                # the CIFAR KD benchmark's other networks: tests/convert/test_cifar_zoo.py
                "cifar_resnet50", "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                "resnet32x4", "resnet8x4", "vgg16_bn", "vgg19_bn", "mobile_half", "shufflev1", "shufflev2")


def test_registry_names():
    assert models.available() == sorted([*SIZES, *EXTRA_MODELS])


# timm's layouts (tests/convert/test_timm.py compares them with timm): timm's parameter counts at 1000 classes
TIMM_COUNTS = [("efficientnet_b0", {}, 5_288_548), ("vit", {}, 5_717_416), ("vit", {"dist_token": True}, 5_910_800)]


@pytest.mark.parametrize("name,kw,expected", TIMM_COUNTS, ids=["efficientnet_b0", "vit_tiny", "deit_tiny_distilled"])
def test_timm_layout_param_counts_and_bf16(name, kw, expected):
    model, variables, x = _abstract_init(name, 1000, 224, dtype=jnp.bfloat16, **kw)
    assert _count(variables["params"]) == expected
    logits, feats = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
    assert logits.shape == (2, 1000) and logits.dtype == jnp.float32 and feats["pooled"].dtype == jnp.bfloat16


def test_vit_refuses_another_image_size_in_one_line():
    with pytest.raises(ValueError, match=r"^this ViT takes 224x224 images \(its img_size\), not 32x32"):
        _abstract_init("vit", 10, 32)
    module = models.create("vit", 3, img_size=16, patch_size=8, embed_dim=8, depth=1, num_heads=2)
    variables = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
    assert export.variables_mismatch(module, variables, (16, 16, 3), "need") is None
    assert export.variables_mismatch(module, variables, (8, 8, 1), "need") == \
        "this ViT takes 16x16 images (its img_size), not 8x8"  # what check_fit refuses a ViT teacher with


@pytest.mark.parametrize("name,num_classes,expected", PUBLISHED)
def test_published_param_counts(name, num_classes, expected):
    _, variables, _ = _abstract_init(name, num_classes)
    assert _count(variables["params"]) == expected


@pytest.mark.parametrize("name", sorted(SIZES))
def test_forward_shapes_and_dtypes(name):
    num_classes = 7
    model, variables, x = _abstract_init(name, num_classes)
    logits, feats = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
    assert logits.shape == (2, num_classes) and logits.dtype == jnp.float32
    assert "pooled" in feats and feats["pooled"].ndim == 2
    for key, shape in EXPECTED_FEATURES.get(name, {}).items():
        assert feats[key].shape == (2, *shape), (key, feats[key].shape)
    if name in EXPECTED_FEATURES:
        assert set(feats) == set(EXPECTED_FEATURES[name])
    # the train path updates batch statistics
    (_, _), updates = jax.eval_shape(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]),
                                     variables, x)
    assert jax.tree_util.tree_structure(updates["batch_stats"]) == \
        jax.tree_util.tree_structure(variables["batch_stats"])


@pytest.mark.parametrize("name", sorted(SIZES))
def test_bf16_compute_keeps_float32_params_and_logits(name):
    model, variables, x = _abstract_init(name, 10, dtype=jnp.bfloat16)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(variables)} == {jnp.dtype(jnp.float32)}
    logits, feats = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
    assert logits.dtype == jnp.float32
    assert feats["pooled"].dtype == jnp.bfloat16


def _random_like(tree, seed=0):
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(rng.uniform(0.5, 1.5, a.shape), a.dtype), tree)


def test_small_models_run_for_real():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 1)), jnp.float32)
    for kw in ({}, {"width": 0.5}, {"dtype": jnp.bfloat16}):
        model = models.create("small_cnn", 10, **kw)
        variables = _random_like(jax.eval_shape(model.init, jax.random.key(0), x))
        logits, feats = jax.jit(model.apply)(variables, x)
        assert logits.shape == (2, 10) and logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))
        (logits, _), updates = jax.jit(
            functools.partial(model.apply, train=True, mutable=["batch_stats", "bn_stats"]))(variables, x)
        assert "bn_stats" in updates and bool(jnp.all(jnp.isfinite(logits)))
        if kw.get("width") == 0.5:
            assert feats["block3"].shape == (2, 4, 4, 64)


def test_mobilenetv2_stem_stride_for_cifar():
    _, variables, x = _abstract_init("mobilenetv2_x0_5", 10, size=32, stem_stride=1)
    model = models.create("mobilenetv2_x0_5", 10, stem_stride=1)
    _, feats = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
    assert feats["stage1"].shape == (2, 32, 32, 8) and feats["stage5"].shape == (2, 2, 2, 1280)


def test_unknown_model_lists_choices():
    with pytest.raises(errors.ConfigError) as info:
        models.create("nope", 10)
    assert "nope" in str(info.value) and "cifar_resnet18" in str(info.value) and "wrn40_2" in str(info.value)


# ---------------------------------------------------------------- PyTorch twins


def _torch_twin(name, num_classes, **kw):
    torch = pytest.importorskip("torch")
    from jka.convert import torch_models

    with torch.device("meta"):  # no weight init, no memory: shapes only
        return torch, torch_models, torch_models.torch_create(name, num_classes, **kw).eval()


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("name", sorted(SIZES))
def test_torch_twin_matches_counts_and_names(name, num_classes):
    torch, torch_models, tmodel = _torch_twin(name, num_classes)
    _, variables, _ = _abstract_init(name, num_classes)
    assert _count(variables["params"]) == sum(p.numel() for p in tmodel.parameters())
    buffers = sum(b.numel() for k, b in tmodel.named_buffers() if not k.endswith("num_batches_tracked"))
    assert _count(variables["batch_stats"]) == buffers

    # every PyTorch tensor has a Flax leaf at flax_path(key) with the converted shape, and vice versa
    flat = {c: _flat(variables[c]) for c in ("params", "batch_stats")}
    norm_modules = {n for n, m in tmodel.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    seen = set()
    for key, tensor in tmodel.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        coll, path = torch_models.flax_path(families.rename(name, key), key.rsplit(".", 1)[0] in norm_modules)
        assert path in flat[coll], (key, coll, path)
        shape = tuple(tensor.shape)
        if len(shape) == 4:
            shape = (shape[2], shape[3], shape[1], shape[0])  # OIHW -> HWIO
        elif len(shape) == 2:
            shape = shape[::-1]
        assert flat[coll][path].shape == shape, key
        seen.add((coll, path))
    assert seen == {(c, p) for c in flat for p in flat[c]}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_torch_twin_feature_shapes(name):
    torch, _, tmodel = _torch_twin(name, 10)
    size = SIZES[name]
    with torch.device("meta"):
        logits, tfeats = tmodel(torch.empty(2, 3, size, size))
    model, variables, x = _abstract_init(name, 10)
    _, feats = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
    assert tuple(logits.shape) == (2, 10)
    assert set(tfeats) == set(feats)
    for key, t in tfeats.items():
        nhwc = tuple(t.shape) if t.ndim == 2 else (t.shape[0], t.shape[2], t.shape[3], t.shape[1])
        assert feats[key].shape == nhwc, key
