"""A DCGAN with one- or two-stage updates (docs/methods.md, "One-stage adversarial training").

D (one logit p per image) minimises ``L_d = mean softplus(p_fake) + mean softplus(−p_real)``; G
minimises ``gan.loss``: ``asymmetric`` (non-saturating, ``mean softplus(−p_fake)``) or ``symmetric``
(minimax, ``−mean softplus(p_fake)``). Two-stage (``gan.one_stage=False``): G's forward pass once
(``jax.vjp``), a D step on the detached fakes, then a G step through the *updated* D. One-stage:
ONE backward pass of L_d updates both, the gradient reaching G's output reversed (symmetric) or
scaled per sample by γ_i = −e^{−p_i} (asymmetric, exact with ``gan.d_norm='group'``; :mod:`.adversarial`).

:class:`GAN` trains it through the shared loop (checkpoints, resume, NaN stop), one step of each
player per loop step on a batch of real training images (they enter only D). Its evaluation writes
``WORKDIR/samples_<step>.png`` (``gan.sample_grids``) and reports ``nn_distance`` (mean distance of
generated images to their nearest real training image) next to ``nn_distance_real_test`` (the same
for held-out images) and D's mean "real" probability on both. It exports the generator.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import struct

from jka.algorithms.base import Algorithm
from jka.algorithms.datafree import adversarial
from jka.config import section
from jka.data.images import save_grid
from jka.errors import ConfigError, unknown_choice
from jka.models.generators import DCGANDiscriminator, DCGANGenerator
from jka.train.state import TrainState, make_optimizer
from jka.train.teachers import compute_dtype

GAN_LOSSES = ("asymmetric", "symmetric")
GAN_DEFAULTS = dict(loss="asymmetric", one_stage=True, nz=64, ngf=64, ndf=64, d_norm="group",
                    sample_grids=True, g_lr=2e-4, d_lr=2e-4, b1=0.5, b2=0.999)


@struct.dataclass
class GANState:
    step: jax.Array
    generator: TrainState
    discriminator: TrainState


def bce_d_loss(p_fake, p_real):
    """``L_d = mean softplus(p_fake) + mean softplus(−p_real)`` (BCE with fake → 0, real → 1)."""
    return jnp.mean(jax.nn.softplus(p_fake)) + jnp.mean(jax.nn.softplus(-p_real))


def generator_loss(p_fake, kind: str):
    """Non-saturating ``mean softplus(−p)`` or minimax ``−mean softplus(p)``."""
    if kind == "asymmetric":
        return jnp.mean(jax.nn.softplus(-p_fake))
    return -jnp.mean(jax.nn.softplus(p_fake))


class GANGame:
    """The players, their state and one step of each schedule (also used by ``benchmarks.onestage``)."""

    def __init__(self, gan_cfg, image_shape, batch_size: int, total_steps: int):
        g = ml_collections.ConfigDict(GAN_DEFAULTS)
        g.update(dict(gan_cfg))
        if g.loss not in GAN_LOSSES:
            raise unknown_choice("gan.loss", g.loss, GAN_LOSSES)
        h, w, c = image_shape
        if h != w:
            raise ConfigError(f"the GAN makes square images; data has {h}×{w}")
        if g.one_stage and g.loss == "asymmetric" and g.d_norm != "group":
            # γ_i scales sample i's gradient alone, which is exact only if D has no cross-sample coupling.
            raise ConfigError(f"one-stage training with the asymmetric loss needs a discriminator without "
                              f"batch statistics; got gan.d_norm={g.d_norm!r}: set gan.d_norm=group "
                              f"(or gan.one_stage=False)")
        self.cfg, self.kind, self.one_stage = g, str(g.loss), bool(g.one_stage)
        self.nz, self.batch_size, self.total_steps = int(g.nz), int(batch_size), int(total_steps)
        self.G = DCGANGenerator(nz=self.nz, ngf=int(g.ngf), img_size=h, nc=c)
        self.D = DCGANDiscriminator(ndf=int(g.ndf), img_size=h, norm=str(g.d_norm))
        self.image_shape = tuple(image_shape)

    def _tx(self, lr):
        return make_optimizer(ml_collections.ConfigDict(dict(name="adam", lr=lr, b1=self.cfg.b1, b2=self.cfg.b2,
                                                              schedule="constant")), self.total_steps)

    def init(self, rng) -> GANState:
        k_g, k_d, k_s, k_t = jax.random.split(rng, 4)
        gv = self.G.init(k_g, jnp.zeros((2, self.nz)), train=False)
        dv = self.D.init(k_d, jnp.zeros((2,) + self.image_shape), train=False)
        gen = TrainState.create(gv["params"], self._tx(float(self.cfg.g_lr)), k_s, gv.get("batch_stats", {}))
        disc = TrainState.create(dv["params"], self._tx(float(self.cfg.d_lr)), k_t, dv.get("batch_stats", {}))
        return GANState(jnp.zeros((), jnp.int32), gen, disc)

    # -- forward pieces ----------------------------------------------------------------------------
    def g_forward(self, g_params, g_bs, z):
        x, upd = self.G.apply({"params": g_params, "batch_stats": g_bs}, z, train=True, mutable=["batch_stats"])
        return x, upd.get("batch_stats", {})

    def critic(self, d_vars, x):
        """``(p, new_batch_stats)``; ``d_vars = {'params', 'batch_stats'}`` (stats unused by GroupNorm)."""
        p, upd = self.D.apply(d_vars, x, train=True, mutable=["batch_stats"])
        return p, upd.get("batch_stats", {})

    def _z(self, state):
        gen, rng = state.generator.next_rng()
        return state.replace(generator=gen), jax.random.normal(rng, (self.batch_size, self.nz))

    # -- the two schedules -----------------------------------------------------------------------------
    def one_stage_step(self, state, real):
        state, z = self._z(state)
        gen, disc = state.generator, state.discriminator
        scaled_critic = adversarial.scale_input_gradient(self.critic, adversarial.bce_gamma)

        def loss_fn(g_params, d_params):
            fake, g_bs = self.g_forward(g_params, gen.batch_stats, z)
            d_vars = {"params": d_params, "batch_stats": disc.batch_stats}
            if self.kind == "symmetric":
                p_fake, d_bs = self.critic(d_vars, adversarial.reverse_gradient(fake))
            else:
                p_fake, d_bs = scaled_critic(d_vars, fake)
            p_real, d_bs = self.critic({"params": d_params, "batch_stats": d_bs or disc.batch_stats}, real)
            l_d = bce_d_loss(p_fake, p_real)
            return l_d, (g_bs, d_bs, p_fake, p_real)

        (l_d, (g_bs, d_bs, p_fake, p_real)), (g_g, g_d) = jax.value_and_grad(
            loss_fn, argnums=(0, 1), has_aux=True)(gen.params, disc.params)
        gen = gen.apply_gradients(g_g, batch_stats=g_bs)
        disc = disc.apply_gradients(g_d, batch_stats=d_bs)
        metrics = {"d_loss": l_d, "g_loss": generator_loss(p_fake, self.kind),
                   "d_real": jnp.mean(jax.nn.sigmoid(p_real)), "d_fake": jnp.mean(jax.nn.sigmoid(p_fake))}
        return state.replace(step=state.step + 1, generator=gen, discriminator=disc), metrics

    def two_stage_step(self, state, real):
        state, z = self._z(state)
        gen, disc = state.generator, state.discriminator
        fake, g_vjp, g_bs = jax.vjp(lambda gp: self.g_forward(gp, gen.batch_stats, z), gen.params, has_aux=True)

        def d_loss_fn(d_params):
            p_fake, d_bs = self.critic({"params": d_params, "batch_stats": disc.batch_stats},
                                       jax.lax.stop_gradient(fake))
            p_real, d_bs = self.critic({"params": d_params, "batch_stats": d_bs or disc.batch_stats}, real)
            return bce_d_loss(p_fake, p_real), (d_bs, p_fake, p_real)

        (l_d, (d_bs, p_fake, p_real)), g_d = jax.value_and_grad(d_loss_fn, has_aux=True)(disc.params)
        disc = disc.apply_gradients(g_d, batch_stats=d_bs)

        def g_loss_fn(x):
            p, _ = self.critic(disc.variables, x)  # D's statistics are not updated by G's step
            return generator_loss(p, self.kind)

        l_g, ct = jax.value_and_grad(g_loss_fn)(fake)
        (g_g,) = g_vjp(ct)
        gen = gen.apply_gradients(g_g, batch_stats=g_bs)
        metrics = {"d_loss": l_d, "g_loss": l_g,
                   "d_real": jnp.mean(jax.nn.sigmoid(p_real)), "d_fake": jnp.mean(jax.nn.sigmoid(p_fake))}
        return state.replace(step=state.step + 1, generator=gen, discriminator=disc), metrics

    def step(self, state, real):
        """One generator and one discriminator update; ``real``: a batch of images in [0, 1]."""
        return (self.one_stage_step if self.one_stage else self.two_stage_step)(state, real)

    def samples(self, state, n: int = 64, seed: int = 0):
        z = jax.random.normal(jax.random.PRNGKey(seed), (n, self.nz))
        return self.g_forward(state.generator.params, state.generator.batch_stats, z)[0]


def nearest_distance(x, ref):
    """Mean over rows of x of the L2 distance to the nearest row of ref (images flattened)."""
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    ref = np.asarray(ref, np.float32).reshape(len(ref), -1)
    d2 = (x ** 2).sum(1)[:, None] + (ref ** 2).sum(1)[None] - 2 * x @ ref.T
    return float(np.sqrt(np.maximum(d2.min(1), 0)).mean())


def as_unit(images):
    """Images as float32 in [0, 1] (uint8 batches are divided by 255)."""
    x = jnp.asarray(images)
    return x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)


class GAN(Algorithm):
    """A DCGAN on the configured dataset through the shared loop (module docstring)."""

    name = "gan"
    uses_labels = False

    def __init__(self, cfg, teachers):
        if teachers:
            raise ConfigError("gan learns from real images, not teachers; remove the teachers")
        self.cfg, self.teachers = cfg, []
        self.load_data()
        self.dtype = compute_dtype(cfg)
        self.total_steps = int(cfg.train.steps)
        self.game = GANGame(section(cfg, "gan", GAN_DEFAULTS, "gan"), self.train_ds.image_shape, int(cfg.data.batch_size), self.total_steps)
        self._sample_fn = jax.jit(lambda state, n, seed: self.game.samples(state, n, seed), static_argnums=(1, 2))
        self._d_fn = jax.jit(lambda state, x: jnp.mean(jax.nn.sigmoid(self.game.critic(
            state.discriminator.variables, x)[0])))

    def init(self, rng, batch):
        return self.game.init(rng)

    def start_from(self, state, variables, info):
        raise ConfigError("gan cannot start from train.init_from; leave it unset")

    def learning_rate(self, step: int) -> float:
        return float(self.game.cfg.g_lr)  # the generator's (constant; the discriminator's is d_lr)

    def train_step(self, state, teacher_vars, batch):
        state, m = self.game.step(state, as_unit(batch["image"]))
        return state, {"loss": m["d_loss"], **m}

    def evaluate(self, state, mesh) -> dict:
        fake = np.asarray(self._sample_fn(state, 256, 1))
        test = np.asarray(as_unit(self.test_ds.images))
        step = int(jax.device_get(state.step))
        if self.game.cfg.sample_grids and self.workdir:
            save_grid(os.path.join(self.workdir, f"samples_{step:06d}.png"), self._sample_fn(state, 64, 0),
                      writer=getattr(self, "writer", None), step=step, tag="samples/generator")
        return {"nn_distance": nearest_distance(fake, self.train_ds.images),
                "nn_distance_real_test": nearest_distance(test, self.train_ds.images),
                "d_real": float(self._d_fn(state, test)), "d_fake": float(self._d_fn(state, fake))}

    def export(self, state):
        g = self.game
        return ("dcgan_generator", 0, state.generator.variables,
                {"nz": g.nz, "ngf": int(g.cfg.ngf), "image_shape": list(g.image_shape), "loss": g.kind,
                 "one_stage": g.one_stage, "d_norm": str(g.cfg.d_norm)})
