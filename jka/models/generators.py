"""Image generators and the DCGAN discriminator, NHWC, images in [0, 1].

- ``Generator``: z → Linear → (4·ngf, S/4, S/4) → BN → ×2 nearest up → conv3×3 4ngf→2ngf → BN →
  LeakyReLU(0.2) → ×2 up → conv3×3 2ngf→ngf → BN → LeakyReLU → conv3×3 ngf→nc → sigmoid.
- ``LargeGenerator``: the same with an 8·ngf start (8ngf→4ngf→2ngf→ngf→nc).
- ``DFADGenerator``: ``SmallGenerator`` whose last conv is followed by tanh and an affine-free
  BatchNorm instead of the sigmoid, so its images are already standardised per channel: the
  teachers' normalised inputs, not [0, 1] pixels (``normalised = True``). DFAD's reference
  generator (VainF/Data-Free-Adversarial-Distillation ``network/gan.py:GeneratorA``).
- ``SmallGenerator``: a 2·ngf start, conv3×3 2ngf→2ngf then 2ngf→ngf (the generator of CMI's
  reference code, zju-vipa/CMI ``datafree/models/generator.py:Generator``; that file's
  ``LargeGenerator``, used there by DAFL, ZSKT, DFAD and DFQ, is this file's ``Generator``).
- ``DCGANGenerator``: z → Linear → (ngf·2^n, 4, 4) → BN-ReLU → n × [4×4 stride-2 transposed conv
  halving the channels, BN, ReLU] → conv3×3 →nc → sigmoid, with n = log2(S/4).
- ``DCGANDiscriminator``: conv3×3 ndf + LeakyReLU → n × [4×4 stride-2 conv doubling the channels,
  norm, LeakyReLU] → flatten → Linear → one logit per image. ``norm='group'`` (GroupNorm) has no
  coupling between samples, which makes the one-stage per-sample gradient scaler exact (one-stage training);
  ``norm='batch'`` uses :class:`jka.models.layers.BatchNorm`.

Defaults nz=256, ngf=64, S=32; ``img_size`` and ``nc`` are free (8×8×1 digits work). Every
module's ``__call__(z_or_x, train)`` takes ``train`` for its BatchNorms (batch statistics when True).
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jka.errors import ConfigError, unknown_choice
from jka.models.layers import BatchNorm

PAD1 = ((1, 1), (1, 1))


def upsample2x(x):
    """×2 nearest-neighbour upsampling (PyTorch ``nn.Upsample(scale_factor=2)``)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _check_size(img_size: int, name: str) -> int:
    """Number of ×2 steps from 4×4 to ``img_size`` (which must be 4·2^n, n ≥ 1)."""
    n = math.log2(img_size / 4) if img_size >= 8 else -1
    if n < 1 or n != int(n):
        raise ConfigError(f"{name} needs an image size of 8, 16, 32, 64, ... (4·2^n), got {img_size}")
    return int(n)


class ImageGenerator(nn.Module):
    """What every generator takes: the latent size, the base width, the image's side and channels."""

    nz: int = 256
    ngf: int = 64
    img_size: int = 32
    nc: int = 3
    dtype: Any = jnp.float32
    normalised = False   # images in [0, 1] (True: in the teachers' normalised space)


class Generator(ImageGenerator):
    start_mult: int = 4  # channels of the first feature map, in units of ngf

    @nn.compact
    def __call__(self, z, train: bool = True):
        if self.img_size % 4:
            raise ConfigError(f"Generator needs an image size divisible by 4, got {self.img_size}")
        s, c0 = self.img_size // 4, self.start_mult * self.ngf
        bn = lambda name: BatchNorm(use_running_average=not train, dtype=self.dtype, name=name)  # noqa: E731
        x = nn.Dense(c0 * s * s, dtype=self.dtype, name="l1")(z).reshape(z.shape[0], s, s, c0)
        x = bn("bn0")(x)
        chans = [m * self.ngf for m in {2: (2, 1), 4: (2, 1), 8: (4, 2, 1)}[self.start_mult]]
        for i, c in enumerate(chans):
            if i < 2:
                x = upsample2x(x)
            x = nn.Conv(c, (3, 3), padding=PAD1, use_bias=False, dtype=self.dtype, name=f"conv{i + 1}")(x)
            x = nn.leaky_relu(bn(f"bn{i + 1}")(x), 0.2)
        x = nn.Conv(self.nc, (3, 3), padding=PAD1, dtype=self.dtype, name="conv_out")(x)
        if self.normalised:
            return BatchNorm(use_running_average=not train, use_scale=False, use_bias=False, dtype=self.dtype,
                             name="bn_out")(jnp.tanh(x)).astype(jnp.float32)
        return jax.nn.sigmoid(x.astype(jnp.float32))


class LargeGenerator(Generator):
    """``Generator`` with an 8·ngf start: 8ngf → (up) 4ngf → (up) 2ngf → ngf → nc."""

    start_mult: int = 8


class SmallGenerator(Generator):
    """``Generator`` with a 2·ngf start: 2ngf → (up) 2ngf → (up) ngf → nc."""

    start_mult: int = 2


class DFADGenerator(SmallGenerator):
    """``SmallGenerator`` ending in tanh + an affine-free BatchNorm (normalised images)."""

    normalised = True


class DCGANGenerator(ImageGenerator):
    @nn.compact
    def __call__(self, z, train: bool = True):
        n = _check_size(self.img_size, "DCGANGenerator")
        c = self.ngf * 2 ** n
        x = nn.Dense(4 * 4 * c, dtype=self.dtype, name="project")(z).reshape(z.shape[0], 4, 4, c)
        x = nn.relu(BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn0")(x))
        for i in range(n):
            c //= 2
            # PyTorch ConvTranspose2d(k=4, s=2, p=1) doubles the size: pad k−1−p = 2 on each side.
            x = nn.ConvTranspose(c, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)), use_bias=False,
                                 dtype=self.dtype, name=f"up{i + 1}")(x)
            x = nn.relu(BatchNorm(use_running_average=not train, dtype=self.dtype, name=f"bn{i + 1}")(x))
        x = nn.Conv(self.nc, (3, 3), padding=PAD1, dtype=self.dtype, name="conv_out")(x)
        return jax.nn.sigmoid(x.astype(jnp.float32))


D_NORMS = ("batch", "group")


class DCGANDiscriminator(nn.Module):
    """Returns one logit per image, shape (B,). Inputs are images in [0, 1]."""

    ndf: int = 64
    img_size: int = 32
    norm: str = "group"
    groups: int = 8
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = True):
        n = _check_size(self.img_size, "DCGANDiscriminator")
        if self.norm not in D_NORMS:
            raise unknown_choice("discriminator norm", self.norm, D_NORMS)
        x = 2.0 * x.astype(self.dtype) - 1.0
        x = nn.leaky_relu(nn.Conv(self.ndf, (3, 3), padding=PAD1, dtype=self.dtype, name="conv0")(x), 0.2)
        c = self.ndf
        for i in range(n):
            c *= 2
            x = nn.Conv(c, (4, 4), strides=(2, 2), padding=PAD1, use_bias=False, dtype=self.dtype,
                        name=f"conv{i + 1}")(x)
            if self.norm == "batch":
                x = BatchNorm(use_running_average=not train, dtype=self.dtype, name=f"norm{i + 1}")(x)
            else:
                x = nn.GroupNorm(num_groups=min(self.groups, c), epsilon=1e-5, dtype=self.dtype,
                                 name=f"norm{i + 1}")(x)
            x = nn.leaky_relu(x, 0.2)
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(1, dtype=self.dtype, name="logit")(x)[:, 0].astype(jnp.float32)


GENERATORS = {"generator": Generator, "large": LargeGenerator, "small": SmallGenerator, "dfad": DFADGenerator,
              "dcgan": DCGANGenerator}


def create_generator(name: str, nz: int = 256, ngf: int = 64, img_size: int = 32, nc: int = 3,
                     dtype=jnp.float32) -> nn.Module:
    """``name`` is one of ``generator``, ``large``, ``small``, ``dfad``, ``dcgan``."""
    if name not in GENERATORS:
        raise unknown_choice("generator", name, GENERATORS)
    return GENERATORS[name](nz=int(nz), ngf=int(ngf), img_size=int(img_size), nc=int(nc), dtype=dtype)
