"""The networks of data-free amalgamation: the group-stack generator, the per-teacher filters, the
student's dual blocks, a small_cnn teacher run from any block, and the regrouped student."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jka.models.layers import BatchNorm
from jka.models.small_cnn import NUM_BLOCKS, small_cnn_block, small_cnn_channels

PAD1 = ((1, 1), (1, 1))


def small_cnn_input_shapes(image_shape, width: float) -> list[tuple]:
    """Shapes (H, W, C) of the inputs of small_cnn blocks 1..3."""
    h, w, c = image_shape
    c1, c2, _ = small_cnn_channels(width)
    return [(h, w, c), (h, w, c1), (h // 2, w // 2, c2)]


def teacher_from(teacher, variables, x, start: int, collect_bn: bool = False):
    """(logits, pooled, sown BN inputs or None) of a frozen small_cnn from block ``start``'s input (B + 1: head)."""
    variables = jax.lax.stop_gradient(variables)
    if collect_bn:
        (logits, feats), upd = teacher.module.apply(variables, x, train=False, start=start, mutable=["bn_stats"])
        return logits, feats["pooled"], upd["bn_stats"]
    logits, feats = teacher.module.apply(variables, x, train=False, start=start)
    return logits, feats["pooled"], None


class DualBlock(nn.Module):
    """One small_cnn block with its own parameters (the student's block b)."""

    block: int
    channels: int

    @nn.compact
    def __call__(self, x, train: bool):
        return small_cnn_block(x, self.channels, self.block, train)[0]


class GroupStackGenerator(nn.Module):
    """Groups 1..B shaped like ``shapes`` (teacher blocks B..1's post-ReLU inputs): BN-ReLU maps, a sigmoid image."""

    shapes: tuple
    nz: int = 64
    ngf: int = 64

    @nn.compact
    def __call__(self, z, train: bool = True):
        bn = lambda name: BatchNorm(use_running_average=not train, name=name)  # noqa: E731
        h0, w0, _ = self.shapes[0]
        x = nn.Dense(h0 * w0 * 2 * self.ngf, name="project")(z).reshape(z.shape[0], h0, w0, 2 * self.ngf)
        x = nn.leaky_relu(bn("bn_project")(x), 0.2)
        outs = []
        for j, (h, w, c) in enumerate(self.shapes):
            if x.shape[1] < h:
                x = jnp.repeat(jnp.repeat(x, h // x.shape[1], axis=1), w // x.shape[2], axis=2)
            x = nn.Conv(self.ngf, (3, 3), padding=PAD1, use_bias=False, name=f"g{j + 1}_conv1")(x)
            x = nn.leaky_relu(bn(f"g{j + 1}_bn1")(x), 0.2)
            out = nn.Conv(c, (3, 3), padding=PAD1, name=f"g{j + 1}_out")(x)
            x = jax.nn.sigmoid(out) if j == len(self.shapes) - 1 else nn.relu(bn(f"g{j + 1}_bn_out")(out))
            outs.append(x)
        return outs


class ChannelFilter(nn.Module):
    """Global pool → FC C/r → ReLU → FC C → sigmoid channel weights, multiplied into the feature."""

    reduction: int = 4

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        h = nn.relu(nn.Dense(max(1, c // self.reduction), name="fc1")(jnp.mean(x, axis=(1, 2))))
        w = jax.nn.sigmoid(nn.Dense(c, name="fc2")(h))
        return x * w[:, None, None, :]


def teacher_heads(teacher_vars, label_idx) -> dict:
    """``{'t<m>': {'kernel', 'bias'}}``: each teacher's linear layer restricted to the requested labels."""
    return {f"t{m}": {k: np.take(np.asarray(v["params"]["linear"][k]), idx, axis=-1) for k in ("kernel", "bias")}
            for m, (v, idx) in enumerate(zip(teacher_vars, label_idx))}


def regroup(blocks, teacher_vars, label_idx, heads=None) -> dict:
    """A small_cnn's variables from dual blocks 1..B and ``heads`` (default :func:`teacher_heads`)."""
    params, stats = {}, {}
    for b in range(1, NUM_BLOCKS + 1):
        params[f"conv{b}"] = blocks[f"block{b}"]["params"]["conv"]
        params[f"bn{b}"] = blocks[f"block{b}"]["params"]["bn"]
        stats[f"bn{b}"] = blocks[f"block{b}"]["batch_stats"]["bn"]
    heads = heads or teacher_heads(teacher_vars, label_idx)
    params["linear"] = {k: np.concatenate([np.asarray(heads[f"t{m}"][k]) for m in range(len(label_idx))], -1)
                        for k in ("kernel", "bias")}
    return {"params": params, "batch_stats": stats}
