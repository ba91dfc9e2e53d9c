"""A DCGAN trainer (digits by default) with one- or two-stage updates (OSGAN, SPEC §5.1).

Players: ``DCGANGenerator`` G and ``DCGANDiscriminator`` D (logit p per image). D always
minimises the BCE loss ``L_d = mean softplus(p_fake) + mean softplus(−p_real)``. The generator's
loss is chosen by ``gan.loss``:

- ``asymmetric`` (non-saturating): ``L_g = mean softplus(−p_fake)`` = −log σ(p).
- ``symmetric`` (minimax): ``L_g = −mean softplus(p_fake)`` = −(fake part of L_d).

``gan.one_stage=False`` (two-stage, the usual alternation): G's forward pass is computed once
(``jax.vjp``); D takes a step on the detached fakes, then G takes a step through the *updated* D.
``gan.one_stage=True``: one forward and ONE backward pass of L_d update both players; the
gradient reaching G's output is reversed (symmetric) or scaled per sample by γ_i = −e^{−p_i}
(asymmetric; see :mod:`jka.adversarial`, exact with ``gan.d_norm='group'``).

The real images enter only D. The run is a job: ``train.steps`` generator updates, executed as
compiled calls of 10 unrolled steps (``jka.synthesis.scan_steps``), logged every ``train.log_every``; sample grids (PNG) are written to the
workdir every ``train.eval_every`` steps and at the end when ``gan.sample_grids`` is on. The
summary's ``eval`` has a sample-quality proxy: the mean distance from generated images to their
nearest real training image, next to the same distance for real held-out images.
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import struct

from jka import adversarial
from jka.algorithms.base import Algorithm
from jka.data import load_split
from jka.errors import ConfigError, unknown_choice
from jka.models.generators import DCGANDiscriminator, DCGANGenerator, save_grid
from jka.recipes import base_config
from jka.synthesis import scan_steps
from jka.train.metrics import MetricWriter, to_python
from jka.train.state import TrainState, make_optimizer

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


class GANTrainer:
    """Models, state and the compiled steps of a GAN run (also used by ``benchmarks.onestage``)."""

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

    def _batch(self, state, data):
        gen, rng = state.generator.next_rng()
        k_z, k_i = jax.random.split(rng)
        z = jax.random.normal(k_z, (self.batch_size, self.nz))
        real = data[jax.random.randint(k_i, (self.batch_size,), 0, data.shape[0])]
        return state.replace(generator=gen), z, real

    # -- the two schedules -----------------------------------------------------------------------------
    def one_stage_step(self, state, data):
        state, z, real = self._batch(state, data)
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

    def two_stage_step(self, state, data):
        state, z, real = self._batch(state, data)
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

    def step(self, state, data):
        return (self.one_stage_step if self.one_stage else self.two_stage_step)(state, data)

    def steps(self, state, data, n: int):
        """``n`` steps in one compiled ``lax.scan``; metrics are averaged over them."""
        state, m = scan_steps(lambda s, _: self.step(s, data), state, None, n)
        return state, jax.tree.map(jnp.mean, m)

    def samples(self, state, n: int = 64, seed: int = 0):
        z = jax.random.normal(jax.random.PRNGKey(seed), (n, self.nz))
        return self.g_forward(state.generator.params, state.generator.batch_stats, z)[0]


def nearest_distance(x, ref):
    """Mean over rows of x of the L2 distance to the nearest row of ref (images flattened)."""
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    ref = np.asarray(ref, np.float32).reshape(len(ref), -1)
    d2 = (x ** 2).sum(1)[:, None] + (ref ** 2).sum(1)[None] - 2 * x @ ref.T
    return float(np.sqrt(np.maximum(d2.min(1), 0)).mean())


class GAN(Algorithm):
    """``jka train`` entry point: a job (own loop: generator/discriminator, no student)."""

    name = "gan"
    is_job = True
    uses_labels = False

    @classmethod
    def run_job(cls, cfg, workdir: str) -> dict:
        train_ds, test_ds = load_split(cfg.data, "train"), load_split(cfg.data, "test")
        data = jnp.asarray(train_ds.images, jnp.float32) / (255.0 if train_ds.images.dtype == np.uint8 else 1.0)
        total, chunk = int(cfg.train.steps), max(1, int(cfg.train.get("log_every", 100)))
        grid_every = int(cfg.train.get("eval_every", 0))
        trainer = GANTrainer(cfg.get("gan", {}), train_ds.image_shape, int(cfg.data.batch_size), total)
        state = trainer.init(jax.random.PRNGKey(int(cfg.get("seed", 0))))
        run = jax.jit(trainer.steps, static_argnums=2, donate_argnums=0)
        writer, grids, done, t0 = MetricWriter(workdir), [], 0, time.perf_counter()
        m = {}
        while done < total:
            n = min(chunk, total - done)
            t = time.perf_counter()
            # A chunk runs as calls of `inner` unrolled steps (see jka.synthesis.scan_steps: XLA:CPU
            # runs rolled loops of these convolutions several times slower); metrics averaged.
            inner = next(k for k in (10, 5, 4, 2, 1) if n % k == 0)
            ms = []
            for _ in range(n // inner):
                state, m = run(state, data, inner)
                ms.append(m)
            m = to_python(jax.tree.map(lambda *v: jnp.mean(jnp.stack(v)), *ms))
            done += n
            if not all(np.isfinite(v) for v in m.values()):
                raise ConfigError(f"GAN losses became {m} at step {done}; lower gan.g_lr/gan.d_lr and rerun")
            m["steps_per_s"] = n / (time.perf_counter() - t)
            writer.write(done, "train", m)
            if trainer.cfg.sample_grids and (done == total or (grid_every and done % grid_every == 0)):
                path = os.path.join(workdir, f"samples_{done:06d}.png")
                title = f"{trainer.kind} {'one' if trainer.one_stage else 'two'}-stage, step {done}"
                grids.append(save_grid(trainer.samples(state), path, title=title))
        seconds = time.perf_counter() - t0
        fake = np.asarray(trainer.samples(state, 256, seed=1))
        final = {"nn_distance": nearest_distance(fake, train_ds.images),
                 "nn_distance_real_test": nearest_distance(test_ds.images, train_ds.images),
                 "d_real": m.get("d_real"), "d_fake": m.get("d_fake")}
        writer.write(total, "eval", final)
        writer.close()
        return {"step": total, "algorithm": cls.name, "eval": final, "train": m, "seconds": seconds,
                "loss": trainer.kind, "one_stage": trainer.one_stage, "d_norm": str(trainer.cfg.d_norm),
                "sample_grids": grids, "devices": jax.device_count()}


def digits_gan(loss: str = "asymmetric", one_stage: bool = True, steps: int = 2000, d_norm: str = "group"):
    """A DCGAN on 8×8 digits (real images feed only the discriminator)."""
    cfg = base_config(algorithm="gan")
    cfg.data.batch_size = 64
    cfg.train.steps = steps
    cfg.train.log_every = 100
    cfg.train.eval_every = 500
    cfg.gan = ml_collections.ConfigDict(GAN_DEFAULTS)
    cfg.gan.loss, cfg.gan.one_stage, cfg.gan.d_norm = loss, one_stage, d_norm
    cfg.gan.ngf = cfg.gan.ndf = 32  # 8×8 images need little capacity
    return cfg
