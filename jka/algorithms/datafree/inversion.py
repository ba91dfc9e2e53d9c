"""DeepInversion (docs/methods.md, "Model inversion"): distil a teacher into a student from inputs
optimised in pixel space, and the pool machinery it shares with CMI (:class:`InversionAlgorithm`).

One loop step is one synthesis round and its student steps, compiled once. Synthesis
(``synthesis.steps``), as the reference code: the inputs are optimised in the teacher's normalised
space, starting from N(0, 1) (``synthesis.init='normal'``; ``'uniform'``: uniform pixels in [0, 1]),
with balanced random labels; each iteration jitters (roll of ±``jitter`` px, flip) and minimises
``bn·R_bn + oh·CE(t, y) − adv·js_T(s, t) + tv·L_tv`` (``L_tv`` on the un-jittered normalised
inputs; Adam ``lr``, β = (0.5, 0.99)), then clips to the normalised image of [0, 1]; the round's
lowest-loss batch goes into the on-device pool (:class:`.synthesis.RingBuffer`). Student (``synthesis.kd_steps``): pool batches (crop
``student_crop_pad``, flip), ``kd(s, t, T)`` with ``loss.T = 20``. No real image is seen (the loop's
batches are empty); pool grids go to ``synthesis.grid_dir`` (default ``WORKDIR/samples``). The
``synthesis`` section holds only the keys the method reads.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jka import losses
from jka.algorithms.datafree.base import DataFreeAlgorithm
from jka.algorithms.datafree.synthesis import (RingBuffer, from_pool, global_view, scan_steps,
                                               teacher_inversion_forward, to_pool)
from jka.config import section
from jka.data.images import save_grid
from jka.errors import ConfigError, unknown_choice
from jka.losses import priors
from jka.train.state import TrainState

POOL_DTYPES = {"float32": jnp.float32, "uint8": jnp.uint8}


@struct.dataclass
class InversionState:
    """Student, synthesized-image pool and (for CMI) the memory bank and projection head."""

    step: jax.Array
    student: TrainState
    pool: RingBuffer
    rng: jax.Array
    extra: dict = struct.field(default_factory=dict)


# What both methods' synthesis sections hold: the schedule, the pool, the student's augmentation.
# batch_size: images per synthesis round (0: data.batch_size, which is the student's batch).
POOL_DEFAULTS = dict(steps=1000, kd_steps=50, pool_size=50000, pool_dtype="float32", student_crop_pad=4,
                     student_flip=True, grid_dir="", grid_images=64, batch_size=0)
# DeepInversion: Adam(lr) on the pixels, 10·bn + oh − js_{T=3} + 0.001·tv, jitter ±4 px and flip.
DEEPINVERSION_DEFAULTS = dict(POOL_DEFAULTS, lr=0.1, jitter=4, flip=True, bn=10.0, oh=1.0, adv=1.0, tv=0.001,
                              js_T=3.0, init="normal")
INITS = ("normal", "uniform")


def jitter_flip(rng, x, jitter: int, flip: bool):
    """DeepInversion's augmentation: one random roll of ±``jitter`` px for the batch, random flip."""
    k_off, k_flip = jax.random.split(rng)
    if jitter > 0:
        off = jax.random.randint(k_off, (2,), -jitter, jitter + 1)
        x = jnp.roll(x, (off[0], off[1]), axis=(1, 2))
    if flip:
        x = jnp.where(jax.random.bernoulli(k_flip), x[:, :, ::-1, :], x)
    return x


def random_targets(rng, n: int, num_classes: int):
    """Balanced random labels: each class ``n // C`` (+1) times, shuffled."""
    return jax.random.permutation(rng, jnp.arange(n) % num_classes)


class InversionAlgorithm(DataFreeAlgorithm):
    """Shared by DeepInversion and CMI: the pool, the student steps on it, grids, evaluation."""

    name = "base"
    synthesis_defaults: dict = POOL_DEFAULTS

    def __init__(self, cfg, teachers):
        if len(teachers) != 1:
            raise ConfigError(f"{cfg.algorithm} distils exactly one teacher; give one entry in teachers")
        if "synthesis" not in cfg:
            raise ConfigError(f"{cfg.algorithm} needs a 'synthesis' section; build the config with "
                              "jka.recipes.datafree.inversion_config")
        self.syn = section(cfg, "synthesis", self.synthesis_defaults, self.name)
        super().__init__(cfg, teachers)
        self.teacher = self.teachers[0]
        self.batch = int(cfg.data.batch_size)
        self.syn_batch = int(self.syn.batch_size) or self.batch
        if self.syn_batch < 0:
            raise ConfigError(f"synthesis.batch_size must be >= 0 (0: data.batch_size), got {self.syn.batch_size}")
        self.kd_steps = int(self.syn.kd_steps)
        self.T = float(cfg.loss.get("T", 20.0))
        if self.syn.pool_dtype not in POOL_DTYPES:
            raise ConfigError(f"synthesis.pool_dtype must be one of {sorted(POOL_DTYPES)}, got {self.syn.pool_dtype!r}")
        if int(self.syn.pool_size) < max(self.batch, self.syn_batch):
            raise ConfigError(f"synthesis.pool_size ({self.syn.pool_size}) must be >= data.batch_size ({self.batch}) "
                              f"and synthesis.batch_size ({self.syn_batch})")
        if int(self.syn.steps) < 1 or self.kd_steps < 1:
            raise ConfigError("synthesis.steps and synthesis.kd_steps must be >= 1")

    # -- state -------------------------------------------------------------------------------------
    def init_extra(self, rng) -> dict:
        return {}

    def init(self, rng, batch):
        k_s, k_e, k_r = jax.random.split(rng, 3)
        pool = RingBuffer.create(int(self.syn.pool_size), self.image_shape, POOL_DTYPES[self.syn.pool_dtype])
        student = self.init_student(k_s, steps=self.total_steps * self.kd_steps)
        return InversionState(step=jnp.zeros((), jnp.int32), student=student, pool=pool,
                              rng=k_r, extra=self.init_extra(k_e))

    # -- student on the pool -------------------------------------------------------------------------
    def student_steps(self, student: TrainState, teacher_vars, pool: RingBuffer, rng):
        """``kd_steps`` student updates on pool batches, one ``lax.scan``; returns (student, mean kd)."""
        pad, flip = int(self.syn.student_crop_pad), bool(self.syn.student_flip)

        def one(st, key):
            k_s, k_a = jax.random.split(key)
            x = self.shard_batch(from_pool(pool.sample(k_s, self.batch)))
            if pad or flip:
                x = global_view(k_a, x, pad, flip)
            x = self.normalise(x)
            t = self.teacher(teacher_vars[0], x)[0]

            def loss_fn(params):
                s, _, new_bs = self.apply_student(params, st.batch_stats, x, train=True)
                return losses.kd(s, t, self.T), new_bs

            (l_kd, new_bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(st.params)
            return st.apply_gradients(grads, batch_stats=new_bs), l_kd

        student, kds = scan_steps(one, student, jax.random.split(rng, self.kd_steps))
        return student, kds.mean()

    def synthesize(self, state, teacher_vars, rng):
        """One synthesis round → (best images in [0,1], extra state, metrics)."""
        raise NotImplementedError

    def train_step(self, state, teacher_vars, batch):
        rng, k_syn, k_kd = jax.random.split(state.rng, 3)
        best, extra, metrics = self.synthesize(state, teacher_vars, k_syn)
        pool = state.pool.add(to_pool(jax.lax.stop_gradient(best), state.pool.data.dtype))
        student, l_kd = self.student_steps(state.student, teacher_vars, pool, k_kd)
        new = state.replace(step=state.step + 1, student=student, pool=pool, rng=rng, extra=extra)
        return new, {"loss": l_kd, "kd": l_kd, "pool_count": pool.count.astype(jnp.float32), **metrics}

    def student_logits(self, params, batch_stats, x):
        return self.apply_student(params, batch_stats, x, train=False)[0]

    # -- evaluation / export -----------------------------------------------------------------------------
    def evaluate(self, state, mesh) -> dict:
        """The student's accuracy; a grid of the pool's newest images in ``synthesis.grid_dir``
        (default ``WORKDIR/samples``)."""
        where = self.syn.grid_dir or (self.workdir and os.path.join(self.workdir, "samples"))
        n = int(min(int(self.syn.grid_images), int(state.pool.count)))
        if where and n > 0:
            newest = (int(state.pool.ptr) - 1 - jnp.arange(n)) % state.pool.capacity
            step = int(state.step)
            save_grid(os.path.join(where, f"{self.name}_round{step:06d}.png"), from_pool(state.pool.data[newest]),
                      writer=getattr(self, "writer", None), step=step, tag="samples/pool")
        return super().evaluate(state, mesh)



class DeepInversion(InversionAlgorithm):
    name = "deepinversion"
    synthesis_defaults = DEEPINVERSION_DEFAULTS

    def __init__(self, cfg, teachers):
        super().__init__(cfg, teachers)
        if self.syn.init not in INITS:
            raise unknown_choice("synthesis.init", self.syn.init, INITS)

    def synthesis_loss(self, v, y, teacher_vars, student, rng):
        """DeepInversion's objective on one jittered/flipped batch of normalised inputs ``v``;
        returns (loss, terms)."""
        s = self.syn
        xn = jitter_flip(rng, v, int(s.jitter), bool(s.flip)).astype(self.dtype)
        t_logits, _, r_bn, _ = teacher_inversion_forward(self.teacher, teacher_vars[0], xn)
        s_logits = self.student_logits(jax.lax.stop_gradient(student.params), student.batch_stats, xn)
        oh = priors.one_hot(t_logits, y)
        adv = losses.js(s_logits, t_logits, float(s.js_T))
        tv = priors.total_variation(v)
        loss = float(s.bn) * r_bn + float(s.oh) * oh - float(s.adv) * adv + float(s.tv) * tv
        return loss, {"bn": r_bn, "oh": oh, "js": adv, "tv": tv}

    def synthesize(self, state, teacher_vars, rng):
        k_x, k_y, k_it = jax.random.split(rng, 3)
        n, c = self.syn_batch, len(self.student_classes)
        shape = (n,) + self.image_shape
        mean, std = jnp.asarray(self.mean, jnp.float32), jnp.asarray(self.std, jnp.float32)
        lo, hi = -mean / std, (1.0 - mean) / std  # [0, 1] pixels, normalised
        v = (jax.random.normal(k_x, shape) if self.syn.init == "normal"
             else (jax.random.uniform(k_x, shape) - mean) / std)
        v = self.shard_batch(v)
        y = random_targets(k_y, n, c)
        tx = optax.adam(float(self.syn.lr), b1=0.5, b2=0.99)
        grad_fn = jax.value_and_grad(self.synthesis_loss, has_aux=True)

        def one(carry, key):
            v, opt, best_v, best_l = carry
            (loss, terms), g = grad_fn(v, y, teacher_vars, state.student, key)
            better = loss < best_l
            best_v = jnp.where(better, v, best_v)
            best_l = jnp.where(better, loss, best_l)
            upd, opt = tx.update(g, opt, v)
            v = jnp.clip(optax.apply_updates(v, upd), lo, hi)
            return (v, opt, best_v, best_l), terms

        init = (v, tx.init(v), v, jnp.asarray(jnp.inf, jnp.float32))
        (_, _, best_v, best_l), terms = scan_steps(one, init, jax.random.split(k_it, int(self.syn.steps)))
        last = jax.tree.map(lambda a: a[-1], terms)
        return self.to_pixels(best_v), state.extra, {"syn_loss": best_l, **{f"syn_{k}": t for k, t in last.items()}}
