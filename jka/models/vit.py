"""Vision Transformer (ViT, Dosovitskiy et al. 2021) and DeiT (Touvron et al. 2021) in timm's layout.

The image is cut into ``patch_size``² patches by a strided convolution (``patch_embed/proj``), a
learned class token (and, for DeiT's distilled models, a distillation token) is put in front, a
learned position embedding is added, and ``depth`` pre-norm blocks follow: ``x + attn(norm1(x))``
(multi-head self-attention, fused ``qkv`` projection, ``proj``), then ``x + mlp(norm2(x))`` (``fc1``,
exact GELU, ``fc2``); a final LayerNorm (eps 1e-6, as timm) and a linear ``head`` on the class token.
Flax names mirror timm's state-dict keys (``blocks_{i}/attn/qkv``, ``cls_token``, ``pos_embed``, ...),
so a timm checkpoint converts by the generic name rule (``jka convert timm:vit_tiny_patch16_224``).

With ``dist_token`` a second head, ``head_dist``, reads the distillation token; the logits are the
mean of the two heads (DeiT's prediction) and ``features`` holds each head's logits apart
(``logits_cls``, ``logits_dist``) for DeiT's distillation (``kd.deit``). Dropout and stochastic depth
are not modelled (timm's defaults are zero).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

LN_EPS = 1e-6
_dense = nn.initializers.xavier_uniform()
_token = nn.initializers.normal(0.02)


class Attention(nn.Module):
    num_heads: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, n, d = x.shape
        head = d // self.num_heads
        qkv = nn.Dense(3 * d, kernel_init=_dense, dtype=self.dtype, name="qkv")(x)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, head).transpose(2, 0, 3, 1, 4)
        weights = jax.nn.softmax((q * head ** -0.5) @ k.swapaxes(-1, -2), axis=-1)
        out = (weights @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
        return nn.Dense(d, kernel_init=_dense, dtype=self.dtype, name="proj")(out)


class Mlp(nn.Module):
    hidden: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        h = nn.gelu(nn.Dense(self.hidden, kernel_init=_dense, dtype=self.dtype, name="fc1")(x), approximate=False)
        return nn.Dense(x.shape[-1], kernel_init=_dense, dtype=self.dtype, name="fc2")(h)


class Block(nn.Module):
    num_heads: int
    mlp_ratio: float
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        norm = lambda name: nn.LayerNorm(epsilon=LN_EPS, dtype=self.dtype, name=name)  # noqa: E731
        x = x + Attention(self.num_heads, self.dtype, name="attn")(norm("norm1")(x))
        return x + Mlp(int(x.shape[-1] * self.mlp_ratio), self.dtype, name="mlp")(norm("norm2")(x))


class PatchEmbed(nn.Module):
    patch_size: int
    embed_dim: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        p = self.patch_size
        x = nn.Conv(self.embed_dim, (p, p), (p, p), padding="VALID", dtype=self.dtype, name="proj")(x)
        return x.reshape(x.shape[0], -1, self.embed_dim)  # row-major patches, as timm's flatten(2)


class ViT(nn.Module):
    """A ViT of any shape; the defaults are ViT-Ti/16 at 224 (timm's vit_tiny_patch16_224)."""

    num_classes: int
    patch_size: int = 16
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0
    img_size: int = 224
    dist_token: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train  # no BatchNorm, no dropout
        grid = self.img_size // self.patch_size
        if x.shape[1] != self.img_size or x.shape[2] != self.img_size:
            raise ValueError(f"this ViT takes {self.img_size}x{self.img_size} images (its img_size), "
                             f"not {x.shape[1]}x{x.shape[2]}")
        tokens = PatchEmbed(self.patch_size, self.embed_dim, self.dtype, name="patch_embed")(x)
        b, d = tokens.shape[0], self.embed_dim
        prefix = [self.param("cls_token", _token, (1, 1, d))]
        if self.dist_token:
            prefix.append(self.param("dist_token", _token, (1, 1, d)))
        pos = self.param("pos_embed", _token, (1, len(prefix) + grid * grid, d))
        x = jnp.concatenate([jnp.broadcast_to(t, (b, 1, d)).astype(tokens.dtype) for t in prefix] + [tokens], axis=1)
        x = x + pos.astype(x.dtype)
        for i in range(self.depth):
            x = Block(self.num_heads, self.mlp_ratio, self.dtype, name=f"blocks_{i}")(x)
        x = nn.LayerNorm(epsilon=LN_EPS, dtype=self.dtype, name="norm")(x)
        head = lambda name, v: nn.Dense(self.num_classes, dtype=self.dtype, name=name)(v).astype(jnp.float32)  # noqa: E731
        feats = {"tokens": x, "pooled": x[:, 0]}
        logits = head("head", x[:, 0])
        if self.dist_token:
            feats["logits_cls"], feats["logits_dist"] = logits, head("head_dist", x[:, 1])
            logits = (feats["logits_cls"] + feats["logits_dist"]) / 2
        return logits, feats
