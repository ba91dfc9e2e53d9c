"""Layers shared by the model zoo."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

# PyTorch BatchNorm defaults: momentum 0.1 (Flax 0.9), eps 1e-5.
BN_MOMENTUM = 0.9
BN_EPS = 1e-5


class BatchNorm(nn.BatchNorm):
    """`nn.BatchNorm` with PyTorch defaults that also records the statistics of its input.

    When the ``bn_stats`` collection is mutable, every BatchNorm sows the batch mean and the
    biased batch variance of its *input* (over all axes but the last) under
    ``bn_stats/<path>/input``. Data-free methods read them for the BN-statistics prior (SPEC §1).
    Otherwise ``sow`` is a no-op and costs nothing.
    """

    momentum: float = BN_MOMENTUM
    epsilon: float = BN_EPS

    @nn.compact
    def __call__(self, x, use_running_average=None, **kwargs):
        if self.is_mutable_collection("bn_stats"):
            xf = x.astype(jnp.float32)
            axes = tuple(range(x.ndim - 1))
            mean = xf.mean(axes)
            var = jnp.square(xf - mean).mean(axes)
            self.sow("bn_stats", "input", (mean, var))
        return super().__call__(x, use_running_average, **kwargs)
