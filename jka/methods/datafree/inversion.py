"""What DeepInversion and CMI share (docs/methods.md, "Model inversion"): the image pool, the student's
steps on it, the round's best batch, sample grids, and the program they are built into.

One loop step, compiled once, is a synthesis round (the method's ``synthesize``: its lowest-loss batch
in [0, 1] goes into the on-device pool ``state.buffers['pool']``) and ``kd_steps`` student steps of
``kd(s, t, T)`` on augmented pool batches. No real image is seen. Both methods' sections hold
:class:`PoolSettings`'s keys besides their own.
"""
from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp

from jka import losses
from jka.config import brief
from jka.data.images import save_grid
from jka.errors import ConfigError
from jka.methods import common
from jka.methods.api import all_checks, need_teachers
from jka.methods.datafree import common as datafree
from jka.methods.datafree.synthesis import RingBuffer, from_pool, global_view, scan_steps, to_pool
from jka.settings import BOOL, Rule, choice, integer, number, setting
from jka.train.program import Program
from jka.train.state import State
from jka.train.update import minimize

POOL_DTYPES = {"float32": jnp.float32, "uint8": jnp.uint8}


@dataclasses.dataclass(frozen=True)
class PoolSettings:
    """The keys of both sections: the schedule, the pool, the student's augmentation and T."""

    steps: int = setting(1000, integer(1), "synthesis iterations per round")
    kd_steps: int = setting(50, integer(1), "student steps on the pool per round")
    pool_size: int = setting(50000, integer(1), "images the pool holds (the oldest are overwritten)")
    pool_dtype: str = setting("float32", choice("pool dtype", POOL_DTYPES), "uint8 quantises to 1/255")
    student_crop_pad: int = setting(4, integer(0), "the student's random crop after padding (0: none)")
    student_flip: bool = setting(True, BOOL, "the student's random horizontal flip")
    grid_dir: str = setting("", Rule(lambda v: isinstance(v, str), "a path (or '' for WORKDIR/samples)"),
                            "where pool grids are written")
    grid_images: int = setting(64, integer(0), "images in a pool grid (0: none)")
    batch_size: int = setting(0, integer(0), "images per synthesis round (0: data.batch_size)")
    T: float = setting(20.0, number(0, low_open=True), "temperature of the student's kd(s, t, T)")


def synthesis_batch(cfg, s: PoolSettings) -> int:
    return s.batch_size or int(cfg.data.batch_size)


def check_pool(cfg, s: PoolSettings) -> None:
    batch = int(cfg.data.batch_size)
    if s.pool_size < max(batch, synthesis_batch(cfg, s)):
        raise ConfigError(f"{cfg.algorithm}.pool_size={brief(s.pool_size)} is not valid: it must be >= data.batch_size "
                          f"({batch}) and {cfg.algorithm}.batch_size ({synthesis_batch(cfg, s)})")


def check(name: str):
    """The config-only checks of an inversion method: one teacher, a pool of at least one batch."""
    return all_checks(need_teachers(name, 1, 1), check_pool)


def random_targets(rng, n: int, num_classes: int):
    """Balanced random labels: each class ``n // C`` (+1) times, shuffled."""
    return jax.random.permutation(rng, jnp.arange(n) % num_classes)


def keep_best(best, loss, value):
    """(``value``, ``loss``) where ``loss`` is below the best so far, else the best."""
    best_value, best_loss = best
    better = loss < best_loss
    return jax.tree.map(lambda a, b: jnp.where(better, a, b), value, best_value), jnp.where(better, loss, best_loss)


def fixed_student(net, state: State):
    """The student's logits ``f(x)`` as a round sees them: its current variables, no gradient into them."""
    params = jax.lax.stop_gradient(state.params["student"])
    return lambda x: net.apply({"params": params, "batch_stats": state.batch_stats["student"]}, x, False)[0]


def round_metrics(best_loss, terms) -> dict:
    """The round's best loss and its last iteration's terms (``syn_*``)."""
    last = jax.tree.map(lambda a: a[-1], terms)
    return {"syn_loss": best_loss, **{f"syn_{k}": t for k, t in last.items()}}


def student_steps(ctx, net, teacher, normalise, state: State, teacher_vars, pool: RingBuffer, rng):
    """``kd_steps`` student updates on pool batches, one ``lax.scan``; returns (state, mean kd)."""
    s, batch = ctx.settings, int(ctx.cfg.data.batch_size)
    pad, flip = s.student_crop_pad, s.student_flip

    def one(st, key):
        k_s, k_a = jax.random.split(key)
        x = ctx.shard(from_pool(pool.sample(k_s, batch)))
        if pad or flip:
            x = global_view(k_a, x, pad, flip)
        x = normalise(x)
        t = teacher(teacher_vars[0], x)[0]

        def loss(params):
            logits, _, new_bs = net.forward(params, st.batch_stats, x, train=True)
            return losses.kd(logits, t, s.T), ({"student": new_bs}, {})

        st, l_kd, _ = minimize(st, "student", loss)
        return st, l_kd

    carried, kds = scan_steps(one, state.replace(buffers={}), jax.random.split(rng, s.kd_steps))
    return carried.replace(buffers=state.buffers), kds.mean()


def grid(name: str, state: State, s: PoolSettings, ectx) -> None:
    """A grid of the pool's newest images in ``grid_dir`` (default ``WORKDIR/samples``)."""
    pool = state.buffers["pool"]
    where = s.grid_dir or (ectx.workdir and os.path.join(ectx.workdir, "samples"))
    n = int(min(s.grid_images, int(pool.count)))
    if where and n > 0:
        newest = (int(pool.ptr) - 1 - jnp.arange(n)) % pool.capacity
        step = int(state.step)
        save_grid(os.path.join(where, f"{name}_round{step:06d}.png"), from_pool(pool.data[newest]),
                  writer=ectx.writer, step=step, tag="samples/pool")


def program(ctx, name: str, data, synthesizer, extra=None) -> Program:
    """``synthesizer(net) -> synthesize(state, teacher_vars, rng) -> (best images, state, metrics)``: a round;
    ``extra(rng) -> (variables, groups, buffers)``: the method's own parts of the state."""
    s, teacher = ctx.settings, ctx.teachers[0]
    net = common.student_net(ctx, len(data.classes))
    normalise = datafree.normaliser(data, ctx.dtype)
    synthesize = synthesizer(net)

    def init(rng, batch):
        k_s, k_e, k_r = jax.random.split(rng, 3)
        variables, group = datafree.student_init(net, k_s, data, ctx, s.kd_steps)
        pool = RingBuffer.create(s.pool_size, data.image_shape, POOL_DTYPES[s.pool_dtype])
        parts, groups, buffers = {"student": variables}, {"student": group}, {"pool": pool}
        if extra is not None:
            for mine, theirs in zip((parts, groups, buffers), extra(k_e)):
                mine.update(theirs)
        return State.create(k_r, parts, groups, buffers)

    def step(state, teacher_vars, batch):
        rng, k_syn, k_kd = jax.random.split(state.rng, 3)
        best, state, metrics = synthesize(state, teacher_vars, k_syn)
        pool = state.buffers["pool"]
        pool = pool.add(to_pool(jax.lax.stop_gradient(best), pool.data.dtype))
        state = state.replace(buffers={**state.buffers, "pool": pool})
        state, l_kd = student_steps(ctx, net, teacher, normalise, state, teacher_vars, pool, k_kd)
        state = state.replace(rng=rng).advance()
        return state, {"loss": l_kd, "kd": l_kd, "pool_count": pool.count.astype(jnp.float32), **metrics}

    prepare = common.preparer(ctx.cfg, data, ctx.dtype)
    accuracy = common.accuracy(common.predictor(net, prepare), data, int(ctx.cfg.data.batch_size),
                               common.teacher_groups(data, ctx.teachers))

    def evaluate(state, ectx):
        grid(name, state, s, ectx)
        return accuracy(state, ectx)

    return Program(name=name, data=data, teachers=ctx.teachers, batches=datafree.NO_DATA, steps=ctx.steps, init=init,
                   step=step, evaluate=evaluate, export=common.export_part(net, data),
                   learning_rate=common.learning_rate(ctx.cfg.optim, ctx.steps, s.kd_steps),
                   details={"model": net.arch, "model_kwargs": net.kwargs})
