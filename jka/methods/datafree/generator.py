"""Generator-based data-free distillation: what DAFL, ZSKT, DFAD and DFQ share (docs/methods.md,
"Data-free distillation"). Each method's file gives its settings and its two losses (a :class:`Game`).

G maps z ~ N(0, I) to images in [0, 1], normalised before the frozen teacher(s) and the student. One
loop step (a schedule unit) is one compiled function: ``g_steps`` generator steps (the student fixed)
then ``kd_steps`` student steps on fresh samples; with ``one_stage=True`` (symmetric games, ``L_G = −L_S``)
a generator step shares its backward pass with a student step through a gradient reversal at G's
output (:mod:`.adversarial`). Parts ``'student'`` and ``'generator'``, each with its own optimizer.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jka import losses
from jka.data.images import save_grid
from jka.errors import ConfigError
from jka.losses import priors
from jka.methods import common
from jka.methods.api import Method, all_checks, need_teachers
from jka.methods.datafree import common as df
from jka.methods.datafree.adversarial import reverse_gradient
from jka.methods.datafree.synthesis import scan_steps
from jka.models.generators import GENERATORS, create_generator
from jka.settings import BOOL, Rule, choice, integer, setting
from jka.train.program import Program
from jka.train.state import Optim, State, make_optimizer
from jka.train.update import minimize

PATH = Rule(lambda v: isinstance(v, str), "a path (or '' for none)")


# G's optimizer: the CMI harness's (zju-vipa/CMI synthesis/generative.py): Adam 1e-3, betas (0.5, 0.999),
# never decayed, no weight decay.
G_OPTIM = Optim(name="adam", lr=1e-3, b1=0.5, b2=0.999, schedule="constant", weight_decay=0.0)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The keys every generator method's section holds; a method's own Settings add its ``T`` and weights."""

    generator: str = setting("generator", choice("generator", GENERATORS), "G's architecture (jka.models.generators)")
    nz: int = setting(256, integer(1), "size of the latent code z")
    ngf: int = setting(64, integer(1), "G's width")
    g_steps: int = setting(1, integer(0), "generator steps per unit")
    kd_steps: int = setting(5, integer(1), "student steps per unit")
    one_stage: bool = setting(False, BOOL, "one backward pass per generator step for both players (symmetric games)")
    sample_dir: str = setting("", PATH, "where sample grids go when the run has no workdir")
    sample_grids: bool = setting(True, BOOL, "a grid of G's samples at each evaluation")
    g_optim: Optim = setting(G_OPTIM, doc="G's optimizer")


class Game(NamedTuple):
    """``generator_loss(settings, t, t_pooled, r_bn, s) -> (loss, metrics)`` (``s`` None unless
    ``uses_student``, ``r_bn`` 0 unless ``uses_bn``), ``student_loss(settings, s, t)``; ``symmetric``: L_G = −L_S."""

    generator_loss: Callable
    student_loss: Callable
    uses_student: bool = True
    uses_bn: bool = False
    symmetric: bool = False


def check(name: str, game: Game) -> Callable:
    """A teacher, and ``one_stage`` only for a symmetric game with ``1 <= g_steps <= kd_steps``."""
    def schedule(cfg, s):
        if s.one_stage and not 1 <= s.g_steps <= s.kd_steps:
            raise ConfigError(f"{name}.one_stage=True merges each generator step with a student step: set "
                              f"1 <= {name}.g_steps <= {name}.kd_steps (got {s.g_steps}, {s.kd_steps})")
        if s.one_stage and not game.symmetric:
            raise ConfigError(f"{name}.one_stage=True needs a symmetric game (zskt, dfad); {name!r} has its own "
                              f"generator loss: set {name}.one_stage=False")
    return all_checks(need_teachers(name), schedule)


def kd_student(settings, s, t):
    """The student's loss of DAFL, ZSKT and DFQ: ``kd(s, t, T)``."""
    return losses.kd(s, t, settings.T)


def teacher_outputs(teachers, teacher_vars, x, with_bn: bool = False):
    """(the teachers' concatenated logits, pooled features, R_bn), gradients to ``x`` only."""
    logits, pooled, r_bn = [], [], jnp.zeros((), jnp.float32)
    for teacher, variables in zip(teachers, teacher_vars):
        variables = jax.lax.stop_gradient(variables)
        if with_bn:
            (t, feats), sown = teacher.module.apply(variables, x, train=False, mutable=["bn_stats"])
            r_bn = r_bn + priors.bn_statistics(sown["bn_stats"], variables["batch_stats"])
        else:
            t, feats = teacher.module.apply(variables, x, train=False)
        logits.append(t)
        pooled.append(feats["pooled"])
    return jnp.concatenate(logits, -1), jnp.concatenate(pooled, -1), r_bn


class Players(NamedTuple):
    """A built run: the student, G, the frozen teachers, the game and the settings."""

    net: common.Net
    module: object
    generate: Callable   # (params, batch_stats, z) -> (normalised images, G's new statistics)
    z: Callable          # rng -> a batch of latent codes, split over the devices
    teachers: list
    game: Game
    s: Settings


def players(ctx, data, game: Game) -> Players:
    s, (h, w, c) = ctx.settings, data.image_shape
    if h != w:
        raise ConfigError(f"generators make square images; the teachers' images are {h}×{w}")
    module = create_generator(s.generator, s.nz, s.ngf, h, c, dtype=ctx.dtype)
    normalise, batch = df.normaliser(data, ctx.dtype), int(ctx.cfg.data.batch_size)

    def generate(params, batch_stats, z):
        """G(z), BN in training mode as the references leave G; [0, 1] images are normalised here."""
        x, upd = module.apply({"params": params, "batch_stats": batch_stats}, z, train=True, mutable=["batch_stats"])
        return (x.astype(ctx.dtype) if module.normalised else normalise(x)), upd["batch_stats"]

    def z(rng):
        return ctx.shard(jax.random.normal(rng, (batch, s.nz), jnp.float32))

    return Players(common.student_net(ctx, len(data.classes)), module, generate, z, ctx.teachers, game, s)


def init(ctx, data, p: Players) -> Callable:
    def init_state(rng, batch):
        k_s, k_g, k_gs = jax.random.split(rng, 3)
        student, student_group = df.student_init(p.net, k_s, data, ctx, p.s.kd_steps)
        g_vars = p.module.init(k_g, jnp.zeros((2, p.s.nz), jnp.float32), train=False)
        g_tx = make_optimizer(p.s.g_optim, max(ctx.steps * p.s.g_steps, 1))
        return State.create(k_gs, {"student": student, "generator": g_vars},
                            {"student": student_group, "generator": (("generator",), g_tx)})
    return init_state


def synthesis_step(p: Players, teacher_vars, state: State):
    """One generator step on its loss, the student fixed (its statistics are not updated)."""
    state, rng = state.next_rng()
    z = p.z(rng)

    def loss_fn(params):
        x, g_bs = p.generate(params["generator"], state.batch_stats["generator"], z)
        t, pooled, r_bn = teacher_outputs(p.teachers, teacher_vars, x, with_bn=p.game.uses_bn)
        logits = p.net.forward(params, state.batch_stats, x, train=True)[0] if p.game.uses_student else None
        loss, metrics = p.game.generator_loss(p.s, t, pooled, r_bn, logits)
        return loss, ({"generator": g_bs}, metrics)

    state, loss, metrics = minimize(state, "generator", loss_fn)
    return state, {"g_loss": loss, **metrics}


def student_step(p: Players, teacher_vars, state: State):
    """One student step on fresh samples of G (G's statistics are not updated)."""
    state, rng = state.next_rng()
    x = jax.lax.stop_gradient(p.generate(state.params["generator"], state.batch_stats["generator"], p.z(rng))[0])
    t = jax.lax.stop_gradient(teacher_outputs(p.teachers, teacher_vars, x)[0])

    def loss_fn(params):
        logits, _, bs = p.net.forward(params, state.batch_stats, x, train=True)
        return p.game.student_loss(p.s, logits, t), ({"student": bs}, {})

    state, loss, _ = minimize(state, "student", loss_fn)
    return state, {"loss": loss}


def joint_step(p: Players, teacher_vars, state: State):
    """One backward pass, both players: G gets −∇(student loss) through the reversal at x."""
    state, rng = state.next_rng()
    z = p.z(rng)

    def loss_fn(params):
        x, g_bs = p.generate(params["generator"], state.batch_stats["generator"], z)
        x = reverse_gradient(x)
        t = teacher_outputs(p.teachers, teacher_vars, x)[0]
        logits, _, bs = p.net.forward(params, state.batch_stats, x, train=True)
        return p.game.student_loss(p.s, logits, t), ({"student": bs, "generator": g_bs}, {})

    state, loss, _ = minimize(state, ("student", "generator"), loss_fn)
    return state, {"loss": loss, "g_loss": -loss}


def unit(p: Players) -> Callable:
    """The loop's step: one unit of ``g_steps`` generator and ``kd_steps`` student updates."""
    s = p.s

    def step(state, teacher_vars, batch):
        def repeat(one, state, n):
            return scan_steps(lambda c, _: one(p, teacher_vars, c), state, None, n)

        metrics = {}
        if s.one_stage:
            state, metrics = repeat(joint_step, state, s.g_steps)
            if s.kd_steps > s.g_steps:
                state, m = repeat(student_step, state, s.kd_steps - s.g_steps)
                metrics = {**metrics, "loss": jnp.concatenate([metrics["loss"], m["loss"]])}
        else:
            if s.g_steps:
                state, m = repeat(synthesis_step, state, s.g_steps)
                metrics.update(m)
            state, m = repeat(student_step, state, s.kd_steps)
            metrics.update(m)
        return state.advance(), {k: v.mean() for k, v in metrics.items()}

    return step


def evaluation(ctx, data, p: Players) -> Callable:
    """The student's accuracy; a grid of G's samples from a fixed z in the workdir (else ``sample_dir``)."""
    pixels = jax.jit(lambda params, bs, z: df.to_pixels(data, p.generate(params, bs, z)[0]))
    z = jax.random.normal(jax.random.PRNGKey(0), (64, p.s.nz), jnp.float32)
    accuracy = common.accuracy(common.predictor(p.net, common.preparer(ctx.cfg, data, ctx.dtype)), data,
                               int(ctx.cfg.data.batch_size), common.teacher_groups(data, ctx.teachers))

    def evaluate(state, ectx):
        where = ectx.workdir or p.s.sample_dir
        if p.s.sample_grids and where:
            save_grid(os.path.join(where, f"samples_{ectx.step:06d}.png"),
                      pixels(state.params["generator"], state.batch_stats["generator"], z), writer=ectx.writer,
                      step=ectx.step, tag="samples/generator")
        return accuracy(state, ectx)

    return evaluate


def program(ctx, name: str, game: Game) -> Program:
    """The Program of the generator method ``name`` playing ``game``."""
    data = df.teachers_split(ctx)
    p = players(ctx, data, game)
    return Program(
        name=name, data=data, teachers=ctx.teachers, batches=df.NO_DATA, steps=ctx.steps, init=init(ctx, data, p),
        step=unit(p), evaluate=evaluation(ctx, data, p), export=common.export_part(p.net, data),
        learning_rate=common.learning_rate(ctx.cfg.optim, ctx.steps, p.s.kd_steps),
        start_from=common.start_from_student(name), details={"model": p.net.arch, "model_kwargs": p.net.kwargs})


def method(name: str, settings: type, game: Game, summary: str) -> Method:
    """The method ``name`` playing ``game`` (``h100_mfu``: DFAD's unit at batch 256)."""
    return Method(name, build=lambda ctx: program(ctx, name, game), settings=settings, check=check(name, game),
                  summary=summary, h100_mfu=0.219)
