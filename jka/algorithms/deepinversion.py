"""DeepInversion (SPEC §5): distil a teacher into a student from inputs optimised in pixel space.

One training step of the loop is one *synthesis round* followed by its student steps, compiled
once:

1. Synthesis (``lax.scan`` over ``synthesis.steps`` iterations): a batch of pixels ``x ∈ [0,1]``
   (uniform init) and random balanced target labels ``y``; each iteration jitters the batch by a
   random roll of ±``jitter`` px (and a random flip if ``flip``), normalises it and minimises

       L = w_bn·R_bn + w_oh·CE(t(x), y) − w_adv·js_T(s(x), t(x)) + w_tv·L_tv(x)

   with defaults ``10·bn + oh − js_{T=3} + 0.001·tv`` (Adam lr 0.1, β=(0.5, 0.99)), clipping the
   pixels to [0, 1] after each update. The batch with the lowest loss of the round is kept and
   written into the on-device image pool (:class:`jka.synthesis.RingBuffer`).
2. Student (``lax.scan`` over ``synthesis.kd_steps``): batches drawn from the pool (random crop
   ``student_crop_pad`` + optional flip), loss ``kd(s, t, T)`` with ``loss.T = 20``.

No real image is ever seen: batches from the loop are empty (``DataFreeAlgorithm``). Sample grids
of the pool are written at each evaluation when ``synthesis.grid_dir`` is set (or, if the loop
gives the algorithm a ``workdir`` attribute, to ``WORKDIR/samples``).
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from jka import losses
from jka.algorithms.datafree_base import DataFreeAlgorithm
from jka.errors import ConfigError
from jka.losses import priors
from jka.recipes import base_config
from jka.synthesis import (RingBuffer, from_pool, global_view, save_grid, scan_steps, teacher_inversion_forward,
                           to_pool)
from jka.train.state import TrainState, make_optimizer

POOL_DTYPES = {"float32": jnp.float32, "uint8": jnp.uint8}


@struct.dataclass
class InversionState:
    """Student, synthesized-image pool and (for CMI) the memory bank and projection head."""

    step: jax.Array
    student: TrainState
    pool: RingBuffer
    rng: jax.Array
    extra: dict = struct.field(default_factory=dict)


# SPEC §5 loss weights per method: DeepInversion 10·bn + oh − js + 0.001·tv; CMI bn + oh + 0.5·adv + 0.8·cr.
METHOD_WEIGHTS = {"deepinversion": dict(bn=10.0, oh=1.0, adv=1.0, tv=0.001),
                  "cmi": dict(bn=1.0, oh=1.0, adv=0.5, tv=0.0, cr=0.8)}


def synthesis_defaults(method: str = "deepinversion", **overrides) -> ml_collections.ConfigDict:
    """Keys of ``cfg.synthesis`` read by DeepInversion and CMI (SPEC §5 defaults of ``method``)."""
    s = ml_collections.ConfigDict(dict(
        steps=1000, lr=0.1, jitter=4, flip=True, bn=10.0, oh=1.0, adv=1.0, tv=0.001, js_T=3.0,
        kd_steps=50, pool_size=50000, pool_dtype="float32", student_crop_pad=4, student_flip=True,
        grid_dir="", grid_images=64,
        # CMI only
        lr_g=1e-3, nz=256, ngf=64, cr=0.8, crop_pad=4, local_scale=(0.25, 1.0), bank_size=40960,
        negatives=4096, tau=0.1, proj_dim=256))
    for k, v in {**METHOD_WEIGHTS.get(method, {}), **overrides}.items():
        s[k] = v
    return s


def inversion_config(algorithm: str, teacher_spec: dict, student: str, student_kwargs: dict, rounds: int,
                     **synthesis) -> ml_collections.ConfigDict:
    """A data-free config: ``rounds`` loop steps, each one synthesis round + its student steps."""
    cfg = base_config(algorithm=algorithm)
    cfg.teachers = [teacher_spec]
    cfg.model.name = student
    cfg.model.kwargs = dict(student_kwargs)
    cfg.loss.T = 20.0
    cfg.train.steps = rounds
    cfg.train.log_every = max(1, rounds // 20)
    cfg.synthesis = synthesis_defaults(algorithm, **synthesis)
    return cfg


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

    def __init__(self, cfg, teachers):
        if len(teachers) != 1:
            raise ConfigError(f"{cfg.algorithm} distils exactly one teacher; give one entry in teachers")
        if "synthesis" not in cfg:
            raise ConfigError(f"{cfg.algorithm} needs a 'synthesis' section; build the config with "
                              "jka.algorithms.deepinversion.inversion_config")
        self.syn = synthesis_defaults(self.name, **cfg.synthesis.to_dict())
        super().__init__(cfg, teachers)
        self.teacher = self.teachers[0]
        self.batch = int(cfg.data.batch_size)
        self.kd_steps = int(self.syn.kd_steps)
        self.T = float(cfg.loss.get("T", 20.0))
        if self.syn.pool_dtype not in POOL_DTYPES:
            raise ConfigError(f"synthesis.pool_dtype must be one of {sorted(POOL_DTYPES)}, got {self.syn.pool_dtype!r}")
        if int(self.syn.pool_size) < self.batch:
            raise ConfigError(f"synthesis.pool_size ({self.syn.pool_size}) must be >= data.batch_size ({self.batch})")
        if int(self.syn.steps) < 1 or self.kd_steps < 1:
            raise ConfigError("synthesis.steps and synthesis.kd_steps must be >= 1")

    # -- state -------------------------------------------------------------------------------------
    def init_student(self, rng) -> TrainState:
        k_init, k_state = jax.random.split(rng)
        variables = self.student.init(k_init, jnp.zeros((1,) + self.image_shape, self.dtype), train=False)
        tx = make_optimizer(self.cfg.optim, self.total_steps * self.kd_steps)
        return TrainState.create(variables["params"], tx, k_state, variables.get("batch_stats", {}))

    def init_extra(self, rng) -> dict:
        return {}

    def init(self, rng, batch):
        k_s, k_e, k_r = jax.random.split(rng, 3)
        pool = RingBuffer.create(int(self.syn.pool_size), self.image_shape, POOL_DTYPES[self.syn.pool_dtype])
        return InversionState(step=jnp.zeros((), jnp.int32), student=self.init_student(k_s), pool=pool,
                              rng=k_r, extra=self.init_extra(k_e))

    def normalise(self, x):
        return ((x - jnp.asarray(self.mean, jnp.float32)) / jnp.asarray(self.std, jnp.float32)).astype(self.dtype)

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
    def predict(self, state, images):
        x = self.prepare(None, images, augment=False)
        return self.apply_student(state.student.params, state.student.batch_stats, x, train=False)[0]

    def grid_dir(self) -> str | None:
        d = str(self.syn.get("grid_dir", "") or "")
        if not d and getattr(self, "workdir", None):
            d = os.path.join(self.workdir, "samples")
        return d or None

    def evaluate(self, state, mesh) -> dict:
        out = super().evaluate(state, mesh)
        d = self.grid_dir()
        if d:
            n = int(min(int(self.syn.grid_images), int(state.pool.count)))
            if n > 0:
                newest = (int(state.pool.ptr) - 1 - jnp.arange(n)) % state.pool.capacity
                imgs = from_pool(state.pool.data[newest])
                save_grid(os.path.join(d, f"{self.name}_round{int(state.step):06d}.png"), imgs)
        return out

    def export(self, state):
        return (self.cfg.model.name, len(self.student_classes), state.student.variables,
                {"classes": self.student_classes, "kwargs": self.student_kwargs})


class DeepInversion(InversionAlgorithm):
    name = "deepinversion"

    def synthesis_loss(self, x01, y, teacher_vars, student, rng):
        """SPEC §5 DeepInversion objective on one jittered/flipped batch; returns (loss, terms)."""
        s = self.syn
        x = jitter_flip(rng, x01, int(s.jitter), bool(s.flip))
        xn = self.normalise(x)
        t_logits, _, r_bn, _ = teacher_inversion_forward(self.teacher, teacher_vars[0], xn)
        s_logits = self.student_logits(jax.lax.stop_gradient(student.params), student.batch_stats, xn)
        oh = priors.one_hot(t_logits, y)
        adv = losses.js(s_logits, t_logits, float(s.js_T))
        tv = priors.total_variation(x01)
        loss = float(s.bn) * r_bn + float(s.oh) * oh - float(s.adv) * adv + float(s.tv) * tv
        return loss, {"bn": r_bn, "oh": oh, "js": adv, "tv": tv}

    def synthesize(self, state, teacher_vars, rng):
        k_x, k_y, k_it = jax.random.split(rng, 3)
        n, c = self.batch, len(self.student_classes)
        x = self.shard_batch(jax.random.uniform(k_x, (n,) + self.image_shape))
        y = random_targets(k_y, n, c)
        tx = optax.adam(float(self.syn.lr), b1=0.5, b2=0.99)
        grad_fn = jax.value_and_grad(self.synthesis_loss, has_aux=True)

        def one(carry, key):
            x, opt, best_x, best_l = carry
            (loss, terms), g = grad_fn(x, y, teacher_vars, state.student, key)
            better = loss < best_l
            best_x = jnp.where(better, x, best_x)
            best_l = jnp.where(better, loss, best_l)
            upd, opt = tx.update(g, opt, x)
            x = jnp.clip(optax.apply_updates(x, upd), 0.0, 1.0)
            return (x, opt, best_x, best_l), terms

        init = (x, tx.init(x), x, jnp.asarray(jnp.inf, jnp.float32))
        (_, _, best_x, best_l), terms = scan_steps(one, init, jax.random.split(k_it, int(self.syn.steps)))
        last = jax.tree.map(lambda a: a[-1], terms)
        return best_x, state.extra, {"syn_loss": best_l, **{f"syn_{k}": v for k, v in last.items()}}


# SPEC §7 CIFAR-10 pairs: name → (teacher arch, student arch).
CIFAR10_PAIRS = {
    "resnet34_resnet18": ("cifar_resnet34", "cifar_resnet18"),
    "wrn40_2_wrn16_1": ("wrn40_2", "wrn16_1"),
    "wrn40_2_wrn40_1": ("wrn40_2", "wrn40_1"),
    "wrn40_2_wrn16_2": ("wrn40_2", "wrn16_2"),
}


def cifar10_inversion_config(method: str, pair: str) -> ml_collections.ConfigDict:
    """DeepInversion/CMI on a SPEC §7 CIFAR-10 pair. The teacher is an exported model directory at
    ``../c10_<teacher arch>`` relative to the run's workdir (a jka run, or a PyTorch checkpoint
    converted with ``jka convert``); override ``teachers.0.workdir`` to point elsewhere.

    200 rounds; each: 256 images synthesized (DeepInversion: 1000 pixel steps, jitter 4 + flip;
    CMI: 200 generator steps, bank 40960, 4096 negatives), then 400 student SGD steps
    (lr 0.1, cosine, batch 256) with kd T=20 on the uint8 pool (all 51,200 synthesized images)."""
    if pair not in CIFAR10_PAIRS:
        raise ConfigError(f"unknown CIFAR-10 pair {pair!r}; valid choices: {', '.join(sorted(CIFAR10_PAIRS))}")
    teacher, student = CIFAR10_PAIRS[pair]
    rounds = 200
    syn = dict(steps=1000 if method == "deepinversion" else 200, kd_steps=400, pool_size=256 * rounds,
               pool_dtype="uint8", jitter=4, flip=True, crop_pad=4, student_crop_pad=4, student_flip=True)
    cfg = inversion_config(method, dict(workdir=f"../c10_{teacher}", classes=list(range(10))), student, {},
                           rounds=rounds, **syn)
    cfg.data.name = "cifar10"
    cfg.data.image_size = 32
    cfg.data.batch_size = 256
    cfg.optim.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine")
    cfg.train.update(log_every=5, eval_every=20, checkpoint_every=20)
    return cfg
