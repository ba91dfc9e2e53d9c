"""DeepInversion (docs/methods.md, "Model inversion"): distil a teacher into a student from inputs
optimised in pixel space.

Synthesis (``deepinversion.steps`` per round, as the reference code): normalised inputs ``v`` (from
N(0, 1), or uniform pixels with ``init='uniform'``) with balanced random labels ``y``; each iteration
jitters and flips them, minimises ``bn·R_bn + oh·CE(t, y) − adv·js_{js_T}(s, t) + tv·L_tv(v)`` (``L_tv``
un-jittered; Adam ``lr``, β = (0.5, 0.99)) and clips ``v`` to the normalised [0, 1]. The round's lowest-loss
batch goes into the pool, on which the student learns ``kd(s, t, T = 20)`` (:mod:`.inversion`).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jka import losses
from jka.losses import priors
from jka.methods.api import Method
from jka.methods.datafree import common as datafree
from jka.methods.datafree import inversion
from jka.methods.datafree.synthesis import scan_steps, teacher_inversion_forward
from jka.settings import BOOL, choice, integer, number, setting
from jka.train.state import State
from jka.train.update import minimize

INITS = ("normal", "uniform")


@dataclasses.dataclass(frozen=True)
class Settings(inversion.PoolSettings):
    lr: float = setting(0.1, number(0), "Adam's learning rate on the pixels (β = 0.5, 0.99)")
    jitter: int = setting(4, integer(0), "random roll of up to ± this many pixels")
    flip: bool = setting(True, BOOL, "random horizontal flip of the synthesis batch")
    bn: float = setting(10.0, number(0), "weight of R_bn")
    oh: float = setting(1.0, number(0), "weight of CE(t, y)")
    adv: float = setting(1.0, number(0), "weight of −js(s, t)")
    tv: float = setting(0.001, number(0), "weight of L_tv")
    js_T: float = setting(3.0, number(0, low_open=True), "temperature of js(s, t)")
    init: str = setting("normal", choice("synthesis init", INITS), "N(0, 1) normalised inputs, or uniform pixels")


def jitter_flip(rng, x, jitter: int, flip: bool):
    """DeepInversion's augmentation: one random roll of ±``jitter`` px for the batch, random flip."""
    k_off, k_flip = jax.random.split(rng)
    if jitter > 0:
        off = jax.random.randint(k_off, (2,), -jitter, jitter + 1)
        x = jnp.roll(x, (off[0], off[1]), axis=(1, 2))
    if flip:
        x = jnp.where(jax.random.bernoulli(k_flip), x[:, :, ::-1, :], x)
    return x


def synthesis_loss(s: Settings, teacher, teacher_vars, student_logits, v, y, rng, dtype):
    """(the objective, its terms) on one jittered/flipped batch of ``v``; ``student_logits``: the fixed student."""
    xn = jitter_flip(rng, v, s.jitter, s.flip).astype(dtype)
    t_logits, _, r_bn, _ = teacher_inversion_forward(teacher, teacher_vars, xn)
    s_logits = student_logits(xn)
    oh = priors.one_hot(t_logits, y)
    adv = losses.js(s_logits, t_logits, float(s.js_T))
    tv = priors.total_variation(v)
    loss = float(s.bn) * r_bn + float(s.oh) * oh - float(s.adv) * adv + float(s.tv) * tv
    return loss, {"bn": r_bn, "oh": oh, "js": adv, "tv": tv}


def synthesizer(ctx, data, net):
    """One round: the pixels of a batch optimised by Adam in a transient state (part ``'pixels'``)."""
    s, teacher = ctx.settings, ctx.teachers[0]
    n = inversion.synthesis_batch(ctx.cfg, s)
    shape = (n,) + data.image_shape
    mean, std = jnp.asarray(data.mean, jnp.float32), jnp.asarray(data.std, jnp.float32)
    lo, hi = -mean / std, (1.0 - mean) / std  # [0, 1] pixels, normalised
    tx = optax.adam(float(s.lr), b1=0.5, b2=0.99)

    def synthesize(state, teacher_vars, rng):
        k_x, k_y, k_it = jax.random.split(rng, 3)
        v = jax.random.normal(k_x, shape) if s.init == "normal" else (jax.random.uniform(k_x, shape) - mean) / std
        v = ctx.shard(v)
        y = inversion.random_targets(k_y, n, len(data.classes))
        logits = inversion.fixed_student(net, state)

        def loss(params, key):
            value, terms = synthesis_loss(s, teacher, teacher_vars[0], logits, params["pixels"], y, key, ctx.dtype)
            return value, ({}, terms)

        def one(carry, key):
            pixels, best = carry
            v = pixels.params["pixels"]
            pixels, value, terms = minimize(pixels, "pixels", lambda p: loss(p, key))
            best = inversion.keep_best(best, value, v)
            pixels = pixels.replace(params={"pixels": jnp.clip(pixels.params["pixels"], lo, hi)})
            return (pixels, best), terms

        pixels = State.create(k_it, {"pixels": {"params": v}}, {"pixels": (("pixels",), tx)})
        (_, (best_v, best_l)), terms = scan_steps(one, (pixels, (v, jnp.asarray(jnp.inf, jnp.float32))),
                                                  jax.random.split(k_it, s.steps))
        return datafree.to_pixels(data, best_v), state, inversion.round_metrics(best_l, terms)

    return synthesize


def build(ctx):
    data = datafree.teachers_split(ctx)
    return inversion.program(ctx, "deepinversion", data, lambda net: synthesizer(ctx, data, net))


METHOD = Method("deepinversion", build=build, settings=Settings, check=inversion.check("deepinversion"),
                summary="model inversion: pixels optimised against the teacher, the student distilled on the pool",
                h100_mfu=0.245)
