"""CMI, contrastive model inversion (docs/methods.md, "Model inversion"): a re-initialised generator
and a learnable ``z`` per synthesis round; one loop step = one round + its student steps, compiled once.

Synthesis (``cmi.steps``, Adam ``lr_g``): ``x = G(z)`` in two views made on the device, global (crop
pad ``crop_pad`` + flip) and local (resized crop, scale ``local_scale``, + flip);

    L = bn·R_bn + oh·CE(t, y) + adv·L_adv + cr·L_cr

with balanced random labels ``y`` and ``L_adv = −mean KL(p_t ‖ p_s)`` over the samples whose argmaxes
agree. ``L_cr`` (:func:`contrastive_loss`) compares a view's feature, per-sample spatial means of the
inputs of a ResNet teacher's four stages (``stages``, as the reference hooks layer1..layer4) or of
every teacher BatchNorm (``bn``; ``auto`` picks as the reference), embedded by a projection head
(part ``'head'``, kept across rounds, its own Adam), with the batch's and ``negatives`` distinct rows of
the memory bank (``state.buffers['bank']``). The round's lowest-loss batch goes into the pool and its
features into the bank; the student learns ``kd(s, t, T = 20)`` on pool batches (:mod:`.inversion`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jka import losses
from jka.errors import ConfigError
from jka.losses import priors
from jka.methods.api import Method
from jka.methods.datafree import common as datafree
from jka.methods.datafree import inversion
from jka.methods.datafree.synthesis import (RingBuffer, global_view, local_view, scan_steps,
                                            teacher_inversion_forward)
from jka.models.generators import GENERATORS, create_generator
from jka.settings import BOOL, Rule, choice, integer, is_number, number, setting
from jka.train.state import State
from jka.train.update import minimize

FEATURES = ("auto", "stages", "bn")
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")  # a ResNet's feature names, in order
SCALE = Rule(lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(is_number(a) and 0 < a <= 1 for a in v)
             and v[0] <= v[1], "two area fractions (low, high), 0 < low <= high <= 1")


@dataclasses.dataclass(frozen=True)
class Settings(inversion.PoolSettings):
    lr_g: float = setting(1e-3, number(0), "Adam's learning rate of the generator, z and the head (β = 0.5, 0.999)")
    nz: int = setting(256, integer(1), "latent size")
    ngf: int = setting(64, integer(1), "generator width")
    bn: float = setting(1.0, number(0), "weight of R_bn")
    oh: float = setting(1.0, number(0), "weight of CE(t, y)")
    adv: float = setting(0.5, number(0), "weight of L_adv")
    cr: float = setting(0.8, number(0), "weight of L_cr")
    crop_pad: int = setting(4, integer(0), "the global view's crop padding")
    flip: bool = setting(True, BOOL, "random horizontal flip of both views")
    local_scale: tuple = setting((0.25, 1.0), SCALE, "the local view's area fractions")
    bank_size: int = setting(40960, integer(1), "rows of the memory bank")
    negatives: int = setting(4096, integer(0), "bank rows drawn as negatives per round")
    tau: float = setting(0.1, number(0, low_open=True), "temperature τ of L_cr")
    proj_dim: int = setting(256, integer(1), "the head's output width")
    features: str = setting("auto", choice("synthesis features", FEATURES), "the contrastive feature (docstring)")
    generator: str = setting("small", choice("generator", GENERATORS), "the generator (jka.models.generators)")


def stage_inputs(feats: dict):
    """Per-sample spatial means of the inputs of layer1..layer4 (the stem's and layer1..3's outputs)."""
    return jnp.concatenate([feats[k].astype(jnp.float32).mean(axis=(1, 2)) for k in STAGES[:-1]], axis=-1)


class ProjectionHead(nn.Module):
    """Linear D→D, ReLU, Linear D→out, L2-normalise (rows)."""

    dim: int
    out: int = 256

    @nn.compact
    def __call__(self, f):
        h = nn.relu(nn.Dense(self.dim, name="fc1")(f.astype(jnp.float32)))
        return losses.l2_normalize(nn.Dense(self.out, name="fc2")(h))  # finite gradient at an all-zero row


def contrastive_loss(local_emb, global_emb, tau: float, valid=None, n_batch: int | None = None):
    """Cross-entropy of ``logits = local·sg(global)ᵀ/τ`` with positives on the diagonal.

    ``valid`` (rows,) masks empty rows (no probability, left out of the mean). With ``n_batch`` the
    first ``n_batch`` rows (the batch) and the rest (the bank) are averaged separately and added, as
    the CMI authors' code does: one mean would shrink the generator's gradient, which only the batch
    rows carry, by ``n_batch / rows`` (1/17 with 256 images and 4096 negatives).
    """
    logits = local_emb @ jax.lax.stop_gradient(global_emb).T / tau
    n = logits.shape[0]
    if valid is None:
        valid = jnp.ones((n,), bool)
    logits = jnp.where(valid[None, :], logits, -1e9)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.diagonal(log_p)
    w = valid.astype(jnp.float32)
    mean = lambda a, b: jnp.sum(a * b) / jnp.maximum(b.sum(), 1.0)  # noqa: E731
    if n_batch is None:
        return mean(nll, w)
    return mean(nll[:n_batch], w[:n_batch]) + mean(nll[n_batch:], w[n_batch:])


def adversarial_agreement(t_logits, s_logits):
    """``−mean KL(p_t ‖ p_s)`` over the samples whose argmaxes agree (0 when none agree)."""
    kl = losses.kl_rows(jax.nn.log_softmax(t_logits.astype(jnp.float32), -1),
                        jax.nn.log_softmax(s_logits.astype(jnp.float32), -1))
    agree = (jnp.argmax(t_logits, -1) == jnp.argmax(s_logits, -1)).astype(jnp.float32)
    return -jnp.sum(kl * agree) / jnp.maximum(agree.sum(), 1.0)


# What a CMI round is built from: the generator, the head, the teacher's contrastive feature
# (``feature(x, teacher_vars) -> ((logits, R_bn), (N, D) feature)``), the inputs' normalisation.
Parts = NamedTuple("Parts", [("generator", Any), ("head", ProjectionHead), ("feature", Callable),
                             ("normalise", Callable), ("stages", bool), ("feat_dim", int)])


def parts(ctx, data) -> Parts:
    """The round's pieces for the teacher ``ctx.teachers[0]`` (``features='stages'`` needs a ResNet)."""
    s, teacher = ctx.settings, ctx.teachers[0]
    h, _, c = data.image_shape
    x = jnp.zeros((2,) + data.image_shape, ctx.dtype)
    names = jax.eval_shape(lambda v: teacher_inversion_forward(teacher, v, x)[1], teacher.variables)
    resnet = all(k in names for k in STAGES)
    if s.features == "stages" and not resnet:
        raise ConfigError(f"cmi.features='stages' needs a ResNet teacher (features {', '.join(STAGES)}); "
                          f"{teacher.arch} has {', '.join(names)}: use 'bn'")
    stages = s.features == "stages" or (s.features == "auto" and resnet)

    def feature(x, teacher_vars):
        logits, feats, r_bn, means = teacher_inversion_forward(teacher, teacher_vars, x, not stages)
        return (logits, r_bn), stage_inputs(feats) if stages else means

    dim = int(jax.eval_shape(lambda v: feature(x, v)[1], teacher.variables).shape[-1])
    return Parts(create_generator(s.generator, s.nz, s.ngf, h, c), ProjectionHead(dim, s.proj_dim), feature,
                 datafree.normaliser(data, ctx.dtype), stages, dim)


def synthesis_loss(s: Settings, p: Parts, params, gen_bs, y, teacher_vars, student_logits, negatives, neg_valid, rng):
    """(``L``, (G's batch stats, x, [global | local] features, terms)) of ``x = G(z)`` against ``negatives``."""
    k_g, k_l = jax.random.split(rng)
    x, upd = p.generator.apply({"params": params["generator"], "batch_stats": gen_bs}, params["z"], train=True,
                               mutable=["batch_stats"])
    xg = p.normalise(global_view(k_g, x, s.crop_pad, s.flip))
    xl = p.normalise(local_view(k_l, x, tuple(s.local_scale), flip=s.flip))
    (t_logits, r_bn), f_global = p.feature(xg, teacher_vars)
    _, f_local = p.feature(xl, teacher_vars)
    s_logits = student_logits(xg)
    oh = priors.one_hot(t_logits, y)
    adv = adversarial_agreement(t_logits, s_logits)
    # Batch rows first, then the sampled bank rows ([global | local] halves).
    g_all = jnp.concatenate([f_global, negatives[:, :p.feat_dim]], 0)
    l_all = jnp.concatenate([f_local, negatives[:, p.feat_dim:]], 0)
    valid = jnp.concatenate([jnp.ones((x.shape[0],), bool), neg_valid])
    emb = lambda f: p.head.apply({"params": params["head"]}, f)  # noqa: E731
    cr = contrastive_loss(emb(l_all), emb(g_all), float(s.tau), valid, n_batch=x.shape[0])
    loss = float(s.bn) * r_bn + float(s.oh) * oh + float(s.adv) * adv + float(s.cr) * cr
    feats = jnp.concatenate([f_global, f_local], -1)
    return loss, (upd["batch_stats"], x, feats, {"bn": r_bn, "oh": oh, "adv": adv, "cr": cr})


def adam(s: Settings):
    """The optimizer of the generator and z, and of the head: Adam(lr_g, β = 0.5, 0.999)."""
    return optax.adam(float(s.lr_g), b1=0.5, b2=0.999)


def synthesizer(ctx, data, p: Parts, net):
    """One round: a fresh generator and z with the run's head (and its optimizer state) in a round's state."""
    s = ctx.settings
    n = inversion.synthesis_batch(ctx.cfg, s)
    n_neg = min(s.negatives, s.bank_size)

    def synthesize(state, teacher_vars, rng):
        k_g, k_z, k_y, k_neg, k_it = jax.random.split(rng, 5)
        z = ctx.shard(jax.random.normal(k_z, (n, s.nz)))
        gv = p.generator.init(k_g, z, train=False)  # re-initialised every round
        y = inversion.random_targets(k_y, n, len(data.classes))
        bank: RingBuffer = state.buffers["bank"]
        negatives, neg_valid = bank.sample_distinct(k_neg, n_neg)
        logits = inversion.fixed_student(net, state)

        def loss(params, gen_bs, key):
            value, (gen_bs, x, feats, terms) = synthesis_loss(s, p, params, gen_bs, y, teacher_vars[0], logits,
                                                              negatives, neg_valid, key)
            return value, ({"generator": gen_bs}, (x, feats, terms))

        def one(carry, key):
            st, best = carry
            st, value, (x, feats, terms) = minimize(st, ("generator", "head"),
                                                    lambda q: loss(q, st.batch_stats["generator"], key))
            return (st, inversion.keep_best(best, value, (x, feats))), terms

        round_state = State.create(k_it, {"generator": gv, "z": {"params": z}, "head": state.variables("head")},
                                   {"generator": (("generator", "z"), adam(s)),
                                    "head": (("head",), state.group("head").tx)})
        round_state = round_state.replace(opt_state={**round_state.opt_state, "head": state.opt_state["head"]})
        best = ((jnp.zeros((n,) + data.image_shape, jnp.float32), jnp.zeros((n, 2 * p.feat_dim), jnp.float32)),
                jnp.asarray(jnp.inf, jnp.float32))
        (round_state, ((best_x, best_f), best_l)), terms = scan_steps(one, (round_state, best),
                                                                      jax.random.split(k_it, s.steps))
        bank = bank.add(best_f)
        state = state.replace(params={**state.params, "head": round_state.params["head"]},
                              opt_state={**state.opt_state, "head": round_state.opt_state["head"]},
                              buffers={**state.buffers, "bank": bank})
        metrics = inversion.round_metrics(best_l, terms)
        return best_x, state, {"syn_loss": best_l, "bank_count": bank.count.astype(jnp.float32), **metrics}

    return synthesize


def build(ctx):
    s = ctx.settings
    data = datafree.teachers_split(ctx)
    p = parts(ctx, data)

    def extra(rng):
        head = p.head.init(rng, jnp.zeros((1, p.feat_dim)))
        bank = RingBuffer.create(s.bank_size, (2 * p.feat_dim,), jnp.float32)
        return {"head": head}, {"head": (("head",), adam(s))}, {"bank": bank}

    return inversion.program(ctx, "cmi", data, lambda net: synthesizer(ctx, data, p, net), extra)


METHOD = Method("cmi", build=build, settings=Settings, check=inversion.check("cmi"),
                summary="contrastive model inversion: a fresh generator per round, the student distilled on the pool",
                h100_mfu=0.251)
