"""Inference with BatchNorm folded into the convolutions is the same function as conv → BatchNorm."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import models
from jka.models import layers


def random_stats(variables, seed):
    """Non-trivial running statistics and affine parameters, so that the fold has work to do."""
    rng = np.random.default_rng(seed)

    def perturb(path, leaf):
        name = jax.tree_util.keystr(path)
        if "var" in name:
            return jnp.asarray(rng.uniform(0.2, 3.0, leaf.shape), leaf.dtype)
        if any(k in name for k in ("mean", "scale", "bias")):
            return jnp.asarray(rng.normal(0.0, 0.5, leaf.shape), leaf.dtype)
        return leaf

    return jax.tree_util.tree_map_with_path(perturb, variables)


@pytest.mark.parametrize("arch,size", [("cifar_resnet18", 16), ("resnet18", 32), ("resnet50", 32)])
def test_folded_inference_matches_separate_batchnorm(arch, size, monkeypatch):
    module = models.create(arch, 7)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, size, size, 3)), jnp.float32)
    variables = random_stats(module.init(jax.random.PRNGKey(0), x, train=False), 1)
    folded = module.apply(variables, x, train=False)
    monkeypatch.setattr(layers, "FOLD_INFERENCE_BN", False)
    separate = module.apply(variables, x, train=False)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), folded, separate)
    # the folded graph really is different: no BatchNorm normalisation left in it
    monkeypatch.setattr(layers, "FOLD_INFERENCE_BN", True)
    text = jax.make_jaxpr(lambda v: module.apply(v, x, train=False))(variables).pretty_print()
    assert "rsqrt" in text  # the fold computes γ/√(σ²+ε) on the weights ...
    n_conv = text.count("conv_general_dilated")
    monkeypatch.setattr(layers, "FOLD_INFERENCE_BN", False)
    text_sep = jax.make_jaxpr(lambda v: module.apply(v, x, train=False))(variables).pretty_print()
    assert text_sep.count("conv_general_dilated") == n_conv


def test_training_and_bn_statistics_are_not_folded(monkeypatch):
    module = models.create("cifar_resnet18", 5)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 8, 8, 3)), jnp.float32)
    variables = random_stats(module.init(jax.random.PRNGKey(0), x, train=False), 2)
    # the BN-statistics prior reads every BatchNorm's input: present whether or not folding is on
    _, sown = module.apply(variables, x, train=False, mutable=["bn_stats"])
    monkeypatch.setattr(layers, "FOLD_INFERENCE_BN", False)
    _, sown_sep = module.apply(variables, x, train=False, mutable=["bn_stats"])
    assert jax.tree_util.tree_structure(sown) == jax.tree_util.tree_structure(sown_sep)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), sown, sown_sep)
    assert "shortcut_1" in sown["bn_stats"]["layer2_0"]
    # training uses batch statistics: identical with the flag on or off
    monkeypatch.setattr(layers, "FOLD_INFERENCE_BN", True)
    out_train, _ = module.apply(variables, x, train=True, mutable=["batch_stats"])
    monkeypatch.setattr(layers, "FOLD_INFERENCE_BN", False)
    out_train_sep, _ = module.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_array_equal(out_train[0], out_train_sep[0])


def test_teacher_folded_once_is_the_same_function_and_gives_the_same_bn_inputs(monkeypatch):
    """fold_batch_norm (a frozen teacher's variables, folded before its run) computes the network's
    function with no normalisation left in the step, and the BatchNorm inputs the BN-statistics prior
    reads are recovered from the folded outputs."""
    module = models.create("cifar_resnet18", 5)
    x = jnp.asarray(np.random.default_rng(3).normal(size=(4, 8, 8, 3)), jnp.float32)
    variables = random_stats(module.init(jax.random.PRNGKey(0), x, train=False), 4)
    folded = layers.fold_batch_norm(module, variables, x.shape[1:])
    assert "folded_bias" in folded["params"]["bn1"] and "scale" not in folded["params"]["bn1"]
    assert not np.allclose(folded["params"]["conv1"]["kernel"], variables["params"]["conv1"]["kernel"])
    out_once, sown_once = module.apply(folded, x, train=False, mutable=["bn_stats"])
    text = jax.make_jaxpr(lambda v: module.apply(v, x, train=False))(folded).pretty_print()
    assert "rsqrt" not in text  # nothing is folded (or normalised) in the step any more
    monkeypatch.setattr(layers, "FOLD_INFERENCE_BN", False)
    assert layers.fold_batch_norm(module, variables, x.shape[1:]) is variables
    out, sown = module.apply(variables, x, train=False, mutable=["bn_stats"])
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), out_once, out)
    assert jax.tree_util.tree_structure(sown_once) == jax.tree_util.tree_structure(sown)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), sown_once, sown)


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-4), (jnp.bfloat16, 2e-2)])
def test_training_batch_norm_has_flax_values_and_gradients(dtype, tol, monkeypatch):
    """layers.batch_norm's own backward pass against flax's BatchNorm differentiated by jax: the
    logits, the updated running statistics and the gradients of the parameters and the input."""
    module = models.create("cifar_resnet18", 5, dtype=dtype)
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(1.0, 2.0, size=(6, 8, 8, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
    variables = random_stats(module.init(jax.random.PRNGKey(0), x, train=False), 6)

    def run():
        def loss(params, x):
            out, new = module.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
            return (out[0].astype(jnp.float32) * w).sum(), (out, new["batch_stats"])
        (_, aux), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(variables["params"], x)
        return aux, grads

    fused = run()
    def logit_sum(p):
        out, _ = module.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])
        return out[0].astype(jnp.float32).sum()
    assert "custom_vjp" in jax.make_jaxpr(logit_sum)(variables["params"]).pretty_print()
    monkeypatch.setattr(layers, "FUSED_TRAINING_BN", False)
    plain = run()

    def close(a, b):
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())))

    jax.tree_util.tree_map(close, fused, plain)
