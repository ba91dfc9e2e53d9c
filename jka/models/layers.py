"""Layers shared by the model zoo."""
from __future__ import annotations

import flax.linen as nn
import jax

# PyTorch BatchNorm defaults: momentum 0.1 (Flax 0.9), eps 1e-5.
BN_MOMENTUM = 0.9
BN_EPS = 1e-5


class BatchNorm(nn.BatchNorm):
    """`nn.BatchNorm` with PyTorch defaults that also records its input.

    When the ``bn_stats`` collection is mutable, every BatchNorm sows its *input* under
    ``bn_stats/<path>/input``: the data-free methods compute the BN-statistics prior
    (:func:`jka.losses.priors.bn_statistics`) and CMI's features from it. Otherwise (and at
    initialisation) nothing is recorded.
    """

    momentum: float = BN_MOMENTUM
    epsilon: float = BN_EPS

    @nn.compact
    def __call__(self, x, use_running_average=None, **kwargs):
        if self.is_mutable_collection("bn_stats") and not self.is_initializing():
            self.sow("bn_stats", "input", x)
        return super().__call__(x, use_running_average, **kwargs)


# Set to False to run inference with separate BatchNorm passes (benchmarks compare the two).
FOLD_INFERENCE_BN = True


def conv_bn(parent: nn.Module, x, conv: nn.Conv, bn: BatchNorm, train: bool):
    """``bn(conv(x))``, with the BatchNorm folded into the convolution in inference.

    With running statistics the BatchNorm is an affine map per channel, ``y = s·z + (β − μ·s)`` with
    ``s = γ / √(σ² + ε)``, so ``bn(conv(x, W)) = conv(x, W·s) + (β − μ·s)``. The folded form is the same
    function, and on GPU XLA gives a convolution followed by a bias (and ReLU / residual add) to cuDNN
    as one fused kernel instead of running a separate normalisation pass over the activation, which
    is what a frozen teacher's forward pass spends much of its time on. Not folded while training,
    at initialisation, or when the ``bn_stats`` collection is mutable (data-free methods read the
    BatchNorm's input statistics); ``conv`` and ``bn`` keep their parameters and names either way.
    """
    foldable = (not conv.use_bias and conv.feature_group_count == 1 and conv.kernel_dilation in (None, 1, (1, 1))
                and conv.input_dilation in (None, 1, (1, 1)) and bn.use_scale and bn.use_bias)
    if (train or not FOLD_INFERENCE_BN or not foldable or parent.is_initializing()
            or parent.is_mutable_collection("bn_stats") or "batch_stats" not in parent.variables):
        return bn(conv(x))
    params, stats = parent.variables["params"], parent.variables["batch_stats"][bn.name]
    s = params[bn.name]["scale"] * jax.lax.rsqrt(stats["var"] + bn.epsilon)
    bias = params[bn.name]["bias"] - stats["mean"] * s
    dtype = conv.dtype or x.dtype
    strides = conv.strides if isinstance(conv.strides, (tuple, list)) else (conv.strides or 1,) * (x.ndim - 2)
    padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
    y = jax.lax.conv_general_dilated(x.astype(dtype), (params[conv.name]["kernel"] * s).astype(dtype),
                                     tuple(strides), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias.astype(dtype)
