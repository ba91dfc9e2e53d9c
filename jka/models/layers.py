"""Layers shared by the model zoo."""
from __future__ import annotations

import contextvars
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

# PyTorch BatchNorm defaults: momentum 0.1 (Flax 0.9), eps 1e-5.
BN_MOMENTUM = 0.9
BN_EPS = 1e-5


def _moments(x):
    """(mean, biased variance) over every axis but the last, in float32, in one pass
    (``E[x²] − E[x]²``, clipped at 0: flax's fast variance)."""
    axes = tuple(range(x.ndim - 1))
    xf = x.astype(jnp.float32)
    mean = xf.mean(axes)
    return mean, jnp.maximum(0.0, jnp.square(xf).mean(axes) - jnp.square(mean))


def _bn_forward(x, scale, bias, epsilon, dtype):
    mean, var = _moments(x)
    rstd = jax.lax.rsqrt(var + epsilon)
    return ((x - mean) * (rstd * scale) + bias).astype(dtype), mean, var, rstd


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def batch_norm(x, scale, bias, epsilon: float, dtype):
    """Training BatchNorm over every axis but the last: ``(y, batch mean, batch variance)``, ``y`` in
    ``dtype``. The same function as flax's (float32 statistics, ``(x − μ)·(rsqrt(σ² + ε)·γ) + β``),
    with a backward pass of its own: it keeps only ``x`` (which the layer before keeps anyway), μ and
    1/σ, and computes the gradients in one reduction (Σ dy, Σ dy·x̂) and one elementwise pass, where
    differentiating the forward pass keeps normalised activations and reduces more often."""
    return _bn_forward(x, scale, bias, epsilon, dtype)[:3]


def _batch_norm_fwd(x, scale, bias, epsilon, dtype):
    y, mean, var, rstd = _bn_forward(x, scale, bias, epsilon, dtype)
    return (y, mean, var), (x, mean, rstd, scale)


def _batch_norm_bwd(epsilon, dtype, residuals, cotangents):
    x, mean, rstd, scale = residuals
    dy, dmean, dvar = cotangents
    axes, n = tuple(range(x.ndim - 1)), x.size // x.shape[-1]
    centred = x.astype(jnp.float32) - mean
    xhat, dy = centred * rstd, dy.astype(jnp.float32)
    sum_dy, sum_dy_xhat = dy.sum(axes), (dy * xhat).sum(axes)
    dx = (scale * rstd) * (dy - (sum_dy + xhat * sum_dy_xhat) / n) + (dmean + 2.0 * dvar * centred) / n
    return dx.astype(x.dtype), sum_dy_xhat, sum_dy


batch_norm.defvjp(_batch_norm_fwd, _batch_norm_bwd)


class BatchNorm(nn.BatchNorm):
    """`nn.BatchNorm` with PyTorch defaults that also records its input, and trains through
    :func:`batch_norm` (same parameter and statistics names; flax's own code initialises it and
    runs it in inference).

    When the ``bn_stats`` collection is mutable, every BatchNorm sows its *input* under
    ``bn_stats/<path>/input``: the data-free methods compute the BN-statistics prior
    (:func:`jka.losses.priors.bn_statistics`) and CMI's features from it. Otherwise (and at
    initialisation) nothing is recorded.
    """

    momentum: float = BN_MOMENTUM
    epsilon: float = BN_EPS

    def record(self, x):
        """Sow ``x`` as this BatchNorm's input (when ``bn_stats`` is mutable)."""
        if self.is_mutable_collection("bn_stats") and not self.is_initializing():
            self.sow("bn_stats", "input", x)

    @nn.compact
    def __call__(self, x, use_running_average=None, **kwargs):
        self.record(x)
        inference = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
        if (inference or self.is_initializing() or not FUSED_TRAINING_BN or kwargs or self.axis != -1
                or self.axis_name is not None or not (self.use_scale and self.use_bias)):
            return super().__call__(x, use_running_average, **kwargs)
        shape = (x.shape[-1],)
        ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), shape)
        ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), shape)
        scale = self.param("scale", self.scale_init, shape, self.param_dtype)
        bias = self.param("bias", self.bias_init, shape, self.param_dtype)
        y, mean, var = batch_norm(x, scale, bias, self.epsilon, self.dtype or jnp.result_type(x, scale, bias))
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return y


def classify(module: nn.Module, x, feats: dict, name: str):
    """``(float32 logits, feats)``: ``x`` globally average-pooled into ``feats['pooled']``, then the
    linear head ``name`` of ``module`` (a compact method's), with ``module.num_classes`` outputs."""
    pooled = feats["pooled"] = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(module.num_classes, dtype=module.dtype, name=name)(pooled)
    return logits.astype(jnp.float32), feats


# Set to False to train with flax's BatchNorm differentiated as it is (tests and benchmarks compare the two).
FUSED_TRAINING_BN = True


# Set to False to run inference with separate BatchNorm passes (benchmarks compare the two).
FOLD_INFERENCE_BN = True
_FOLDABLE: contextvars.ContextVar = contextvars.ContextVar("jka_foldable_pairs", default=None)


def _conv(x, kernel, conv: nn.Conv):
    dtype = conv.dtype or x.dtype
    strides = conv.strides if isinstance(conv.strides, (tuple, list)) else (conv.strides or 1,) * (x.ndim - 2)
    padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
    return jax.lax.conv_general_dilated(x.astype(dtype), kernel.astype(dtype), tuple(strides), padding,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv_bn(parent: nn.Module, x, conv: nn.Conv, bn: BatchNorm, train: bool):
    """``bn(conv(x))``, with the BatchNorm folded into the convolution in inference.

    With running statistics the BatchNorm is an affine map per channel, ``y = s·z + (β − μ·s)`` with
    ``s = γ / √(σ² + ε)``, so ``bn(conv(x, W)) = conv(x, W·s) + (β − μ·s)``. The folded form is the same
    function, and XLA gives a convolution followed by a bias (and ReLU / residual add) as one fused
    kernel instead of running a separate normalisation pass over the activation, which is what a
    frozen teacher's forward pass spends much of its time on. A frozen teacher's variables are folded
    once, before its run (:func:`fold_batch_norm`: ``W·s`` and the bias stored in place of the conv's
    kernel and the BatchNorm's parameters); other variables in inference are folded here, in every
    call. Not folded while training or at initialisation; with the ``bn_stats`` collection mutable
    (data-free methods read the BatchNorm's input statistics) a folded BatchNorm records its input
    recovered from the folded convolution, ``z = conv(x, W·s) / s``, and an unfolded one runs as it is.
    """
    foldable = (not conv.use_bias and conv.feature_group_count == 1 and conv.kernel_dilation in (None, 1, (1, 1))
                and conv.input_dilation in (None, 1, (1, 1)) and bn.use_scale and bn.use_bias)
    pairs = _FOLDABLE.get()
    if pairs is not None and foldable and not train:
        pairs.append((parent.scope.path, conv.name, bn.name, bn.epsilon))
    if train or parent.is_initializing() or not foldable:
        return bn(conv(x))
    params = parent.variables["params"]
    if "folded_bias" in params.get(bn.name, {}):  # folded once, before the run
        folded = params[bn.name]
        y = _conv(x, params[conv.name]["kernel"], conv)
        if parent.is_mutable_collection("bn_stats"):  # before the bias: no cancellation when s is small
            bn.record(y.astype(jnp.float32) / folded["folded_scale"])
        return y + folded["folded_bias"].astype(y.dtype)
    if not FOLD_INFERENCE_BN or parent.is_mutable_collection("bn_stats") or "batch_stats" not in parent.variables:
        return bn(conv(x))
    stats = parent.variables["batch_stats"][bn.name]
    s = params[bn.name]["scale"] * jax.lax.rsqrt(stats["var"] + bn.epsilon)
    bias = params[bn.name]["bias"] - stats["mean"] * s
    return _conv(x, params[conv.name]["kernel"] * s, conv) + bias.astype(conv.dtype or x.dtype)


def fold_batch_norm(module, variables: dict, image_shape) -> dict:
    """``variables`` of ``module`` with every foldable BatchNorm folded into its convolution once
    (:func:`conv_bn`): the conv's kernel becomes ``W·s`` and the BatchNorm's parameters
    ``{folded_scale: s, folded_bias: β − μ·s}`` (its running statistics stay, for the BN prior). For
    a frozen network in inference; the same function of the input. Unchanged when
    :data:`FOLD_INFERENCE_BN` is off or nothing folds."""
    if not FOLD_INFERENCE_BN:
        return variables
    pairs, token = [], _FOLDABLE.set([])
    try:
        x = jax.ShapeDtypeStruct((1,) + tuple(image_shape), jnp.float32)
        jax.eval_shape(lambda v, x: module.apply(v, x, train=False), variables, x)
        pairs = _FOLDABLE.get()
    finally:
        _FOLDABLE.reset(token)
    params = jax.tree.map(lambda a: a, dict(variables["params"]))  # a copy to fold into
    for path, conv, bn, eps in dict.fromkeys(pairs):
        node, stats = params, variables["batch_stats"]
        for key in path:
            node[key] = dict(node[key])
            node, stats = node[key], stats[key]
        if "folded_bias" in node[bn]:
            continue
        s = node[bn]["scale"] * jax.lax.rsqrt(stats[bn]["var"] + eps)
        node[conv] = {**node[conv], "kernel": node[conv]["kernel"] * s}
        node[bn] = {"folded_scale": s, "folded_bias": node[bn]["bias"] - stats[bn]["mean"] * s}
    return {**variables, "params": params}
