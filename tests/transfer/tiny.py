"""Tiny models for the transferability tests (no training needed)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jka.transfer.attribution import ZooModel


class TinyLinear(nn.Module):
    """logits = W · vec(x) + b; features: 'flat' (vec x) and 'pooled' (= logits)."""

    num_classes: int = 3

    @nn.compact
    def __call__(self, x, train: bool = False):
        flat = x.reshape(x.shape[0], -1)
        logits = nn.Dense(self.num_classes, name="linear")(flat)
        return logits, {"flat": flat, "pooled": logits}


def tiny_linear_model(seed=0, shape=(4, 4, 2), mean=(0.0,), std=(1.0,), name="lin"):
    module = TinyLinear()
    variables = module.init(jax.random.PRNGKey(seed), jnp.zeros((1, *shape)))
    return ZooModel(name, "tiny_linear", module, variables, tuple(mean), tuple(std), tuple(shape))


def probe_images(n=6, shape=(4, 4, 2), seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, *shape)).astype(np.float32)
