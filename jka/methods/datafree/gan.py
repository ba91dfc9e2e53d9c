"""A DCGAN with one- or two-stage updates (docs/methods.md, "One-stage adversarial training").

D minimises :func:`bce_d_loss`, G ``gan.loss`` (:func:`generator_loss`). Two-stage: G's forward pass
once (``jax.vjp``), a D step on the detached fakes, then a G step through the updated D. One-stage: one
backward pass of L_d updates both, the gradient at G's output reversed (symmetric) or scaled per sample
by γ_i = −e^{−p_i} (asymmetric, exact with ``gan.d_norm='group'``; :mod:`.adversarial`).

:func:`game` is the players, their state and one step of each schedule (also ``benchmarks.onestage``'s);
the loop runs one step of each player per batch of real training images (seen by D only). Eval writes
``WORKDIR/samples_<step>.png`` and reports ``nn_distance`` (generated images to their nearest training
image), ``nn_distance_real_test`` (the same for test images) and D's "real" probability on both.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jka.data.augment import to_unit
from jka.data.images import save_grid
from jka.errors import ConfigError
from jka.methods import common
from jka.methods.api import Method, all_checks, no_teachers
from jka.methods.datafree import adversarial
from jka.models.generators import D_NORMS, DCGANDiscriminator, DCGANGenerator
from jka.settings import BOOL, choice, integer, number, setting
from jka.train.program import Exported, Program
from jka.train.state import Optim, State, make_optimizer
from jka.train.update import apply, minimize

LOSSES = ("asymmetric", "symmetric")
BETA = number(0, 1, high_open=True)


@dataclasses.dataclass(frozen=True)
class Settings:
    loss: str = setting("asymmetric", choice("gan loss", LOSSES), "G's loss: non-saturating or minimax")
    one_stage: bool = setting(True, BOOL, "one backward pass updates both players")
    nz: int = setting(64, integer(1), "size of the latent code z")
    ngf: int = setting(64, integer(1), "G's width")
    ndf: int = setting(64, integer(1), "D's width")
    d_norm: str = setting("group", choice("discriminator norm", D_NORMS), "D's normalisation")
    sample_grids: bool = setting(True, BOOL, "a grid of G's samples at each evaluation")
    g_lr: float = setting(2e-4, number(0), "G's Adam learning rate (constant)")
    d_lr: float = setting(2e-4, number(0), "D's Adam learning rate (constant)")
    b1: float = setting(0.5, BETA, "Adam β1 of both players")
    b2: float = setting(0.999, BETA, "Adam β2 of both players")


def bce_d_loss(p_fake, p_real):
    """``L_d = mean softplus(p_fake) + mean softplus(−p_real)`` (BCE with fake → 0, real → 1)."""
    return jnp.mean(jax.nn.softplus(p_fake)) + jnp.mean(jax.nn.softplus(-p_real))


def generator_loss(p_fake, kind: str):
    """Non-saturating ``mean softplus(−p)`` or minimax ``−mean softplus(p)``."""
    if kind == "asymmetric":
        return jnp.mean(jax.nn.softplus(-p_fake))
    return -jnp.mean(jax.nn.softplus(p_fake))


def check_game(cfg, s: Settings):
    if s.one_stage and s.loss == "asymmetric" and s.d_norm != "group":
        # γ_i scales sample i's gradient alone, which is exact only if D has no cross-sample coupling.
        raise ConfigError(f"one-stage training with the asymmetric loss needs a discriminator without batch "
                          f"statistics; got gan.d_norm={s.d_norm!r}: set gan.d_norm=group (or gan.one_stage=False)")


class Game(NamedTuple):
    init: Callable     # rng -> State (parts 'generator', 'discriminator'; the run's key is G's)
    step: Callable     # (state, real images in [0, 1]) -> (state, metrics): one update of each player
    samples: Callable  # (state, n, seed) -> n images of G from a fixed z
    critic: Callable   # (D's variables, x) -> (p, D's new batch statistics)


def game(s: Settings, image_shape, batch_size: int, total_steps: int) -> Game:
    """The players of ``s`` on images of ``image_shape``, ``batch_size`` fakes a step."""
    check_game(None, s)
    h, w, c = image_shape
    if h != w:
        raise ConfigError(f"the GAN makes square images; data has {h}×{w}")
    G = DCGANGenerator(nz=s.nz, ngf=s.ngf, img_size=h, nc=c)
    D = DCGANDiscriminator(ndf=s.ndf, img_size=h, norm=s.d_norm)

    def tx(lr):
        return make_optimizer(Optim(name="adam", lr=lr, b1=s.b1, b2=s.b2, schedule="constant", weight_decay=0.0),
                              total_steps)

    def init(rng):
        k_g, k_d, k_s, _ = jax.random.split(rng, 4)
        gv = G.init(k_g, jnp.zeros((2, s.nz)), train=False)
        dv = D.init(k_d, jnp.zeros((2,) + tuple(image_shape)), train=False)
        groups = {"generator": (("generator",), tx(s.g_lr)), "discriminator": (("discriminator",), tx(s.d_lr))}
        return State.create(k_s, {"generator": gv, "discriminator": dv}, groups)

    def g_forward(g_params, g_bs, z):
        x, upd = G.apply({"params": g_params, "batch_stats": g_bs}, z, train=True, mutable=["batch_stats"])
        return x, upd.get("batch_stats", {})

    def critic(d_vars, x):
        """``(p, new_batch_stats)``; ``d_vars = {'params', 'batch_stats'}`` (stats unused by GroupNorm)."""
        p, upd = D.apply(d_vars, x, train=True, mutable=["batch_stats"])
        return p, upd.get("batch_stats", {})

    def d_loss(params, d_bs, fake, real, on_fake=critic):
        """L_d of D's ``params`` (statistics ``d_bs``), the fakes seen through ``on_fake``."""
        p_fake, bs = on_fake({"params": params, "batch_stats": d_bs}, fake)
        p_real, bs = critic({"params": params, "batch_stats": bs or d_bs}, real)
        return bce_d_loss(p_fake, p_real), ({"discriminator": bs}, (p_fake, p_real))

    def metrics(l_d, l_g, p_fake, p_real):
        return {"d_loss": l_d, "g_loss": l_g, "d_real": jnp.mean(jax.nn.sigmoid(p_real)),
                "d_fake": jnp.mean(jax.nn.sigmoid(p_fake))}

    if s.loss == "symmetric":
        def fake_critic(d_vars, x):
            return critic(d_vars, adversarial.reverse_gradient(x))
    else:
        fake_critic = adversarial.scale_input_gradient(critic, adversarial.bce_gamma)

    def one_stage_step(state, real, z):
        def loss_fn(params):
            fake, g_bs = g_forward(params["generator"], state.batch_stats["generator"], z)
            d_bs = state.batch_stats["discriminator"]
            l_d, (new_bs, ps) = d_loss(params["discriminator"], d_bs, fake, real, fake_critic)
            return l_d, ({"generator": g_bs, **new_bs}, ps)

        state, l_d, (p_fake, p_real) = minimize(state, ("generator", "discriminator"), loss_fn)
        return state, metrics(l_d, generator_loss(p_fake, s.loss), p_fake, p_real)

    def two_stage_step(state, real, z):
        fake, g_vjp, g_bs = jax.vjp(lambda gp: g_forward(gp, state.batch_stats["generator"], z),
                                    state.params["generator"], has_aux=True)
        d_bs = state.batch_stats["discriminator"]
        fixed = jax.lax.stop_gradient(fake)
        state, l_d, (p_fake, p_real) = minimize(
            state, "discriminator", lambda params: d_loss(params["discriminator"], d_bs, fixed, real))
        # G's step through the updated D, whose statistics it does not update; G's forward pass is shared.
        l_g, ct = jax.value_and_grad(lambda x: generator_loss(critic(state.variables("discriminator"), x)[0],
                                                              s.loss))(fake)
        state = apply(state, "generator", {"generator": g_vjp(ct)[0]}, {"generator": g_bs})
        return state, metrics(l_d, l_g, p_fake, p_real)

    def step(state, real):
        """One generator and one discriminator update; ``real``: a batch of images in [0, 1]."""
        state, rng = state.next_rng()
        z = jax.random.normal(rng, (batch_size, s.nz))
        state, m = (one_stage_step if s.one_stage else two_stage_step)(state, real, z)
        return state.advance(), m

    def samples(state, n: int = 64, seed: int = 0):
        z = jax.random.normal(jax.random.PRNGKey(seed), (n, s.nz))
        return g_forward(state.params["generator"], state.batch_stats["generator"], z)[0]

    return Game(init, step, samples, critic)


def nearest_distance(x, ref):
    """Mean over rows of x of the L2 distance to the nearest row of ref (images flattened)."""
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    ref = np.asarray(ref, np.float32).reshape(len(ref), -1)
    d2 = (x ** 2).sum(1)[:, None] + (ref ** 2).sum(1)[None] - 2 * x @ ref.T
    return float(np.sqrt(np.maximum(d2.min(1), 0)).mean())


def build(ctx):
    s = ctx.settings
    data = common.split(ctx.cfg)
    g = game(s, data.image_shape, int(ctx.cfg.data.batch_size), ctx.steps)
    draw = jax.jit(g.samples, static_argnums=(1, 2))
    d_real = jax.jit(lambda state, x: jnp.mean(jax.nn.sigmoid(g.critic(state.variables("discriminator"), x)[0])))

    def step(state, teacher_vars, batch):
        state, m = g.step(state, to_unit(jnp.asarray(batch["image"])))
        return state, {"loss": m["d_loss"], **m}

    def evaluate(state, ectx):
        fake, test = np.asarray(draw(state, 256, 1)), np.asarray(to_unit(jnp.asarray(data.test.images)))
        if s.sample_grids and ectx.workdir:
            save_grid(os.path.join(ectx.workdir, f"samples_{ectx.step:06d}.png"), draw(state, 64, 0),
                      writer=ectx.writer, step=ectx.step, tag="samples/generator")
        return {"nn_distance": nearest_distance(fake, data.train.images),
                "nn_distance_real_test": nearest_distance(test, data.train.images),
                "d_real": float(d_real(state, test)), "d_fake": float(d_real(state, fake))}

    def export(state):
        return Exported("dcgan_generator", 0, state.variables("generator"),
                        {"nz": s.nz, "ngf": s.ngf, "image_shape": list(data.image_shape), "loss": s.loss,
                         "one_stage": s.one_stage, "d_norm": s.d_norm})

    return Program(name="gan", data=data, teachers=[], batches=common.batches(ctx.cfg, data, with_labels=False),
                   steps=ctx.steps, init=lambda rng, batch: g.init(rng), step=step, evaluate=evaluate, export=export,
                   learning_rate=lambda step: float(s.g_lr))


METHOD = Method("gan", build=build, settings=Settings,
                check=all_checks(no_teachers("gan", "learns from real images, not teachers"), check_game),
                summary="a DCGAN on the dataset's images, one- or two-stage updates (no student)")
