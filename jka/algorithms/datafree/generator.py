"""Generator-based data-free distillation: DAFL, ZSKT, DFAD, DFQ (docs/methods.md, "Data-free
distillation").

:class:`GeneratorDistillation` is shared by the four: G maps z ~ N(0, I) to images in [0, 1],
normalised before the frozen teacher(s) and the student see them. One loop step (a schedule unit) is
ONE compiled function: ``g_steps`` generator steps (student fixed; gradients flow through the teacher
to the image, never to its variables) then ``kd_steps`` student steps on fresh samples. With
``datafree.one_stage=True`` (symmetric games: ZSKT, DFAD) each generator step shares one backward
pass with a student step through a gradient reversal at G's output. The generator losses' weights
are config keys ``loss.<name>`` (``loss_weights``):

- DAFL: ``L_G = oh + 0.001·act + 20·bal`` (teacher only); ``L_S = kd(s, t, T)``.
- ZSKT: ``L_G = −kd(s, t, 1) = −L_S``.   DFAD: ``L_G = −L1(s, t) = −L_S`` (mean |s − t| of logits).
- DFQ: ``L_G = adv·(−kd(s, t, T)) + bn·R_bn + oh·L_oh + 20·L_bal``; ``L_S = kd(s, t, T)``.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
from flax import struct

from jka import losses
from jka.algorithms.datafree import adversarial
from jka.algorithms.datafree.base import DataFreeAlgorithm
from jka.algorithms.datafree.synthesis import scan_steps
from jka.config import section
from jka.data.images import save_grid
from jka.errors import ConfigError
from jka.losses import priors
from jka.models.generators import create_generator
from jka.train.state import TrainState, make_optimizer


@struct.dataclass
class GeneratorKDState:
    """The players of a generator-based data-free run; the loop reads ``step`` only."""

    step: jax.Array
    student: TrainState
    generator: TrainState


# g_optim: the CMI harness's generator optimizer (zju-vipa/CMI synthesis/generative.py): Adam 1e-3,
# betas (0.5, 0.999), never decayed.
DATAFREE_DEFAULTS = dict(
    generator="generator", nz=256, ngf=64, g_steps=1, kd_steps=5, one_stage=False, sample_dir="",
    sample_grids=True, g_optim=dict(name="adam", lr=1e-3, b1=0.5, b2=0.999, schedule="constant",
                                    weight_decay=0.0, warmup_steps=0, grad_clip=None, decay_at=(0.5, 0.75),
                                    decay_factor=0.1))


class GeneratorDistillation(DataFreeAlgorithm):
    """Base of the generator-based methods. Subclasses define the two losses below."""

    name = "base"
    symmetric = False            # generator_loss == −student_loss: one_stage is allowed
    loss_weights: dict = {}      # weights of the generator loss's terms (config: loss.<name>)
    synthesis_uses_student = True
    synthesis_uses_bn = False

    def __init__(self, cfg, teachers):
        self.df = section(cfg, "datafree", DATAFREE_DEFAULTS, cfg.algorithm)
        self.g_steps, self.kd_steps = int(self.df.g_steps), int(self.df.kd_steps)
        self.one_stage = bool(self.df.one_stage)
        if self.g_steps < 0 or self.kd_steps < 1:
            raise ConfigError(f"datafree.kd_steps must be >= 1 and g_steps >= 0, got {self.kd_steps}, {self.g_steps}")
        if self.one_stage and not 1 <= self.g_steps <= self.kd_steps:
            raise ConfigError(f"datafree.one_stage=True merges each generator step with a student step: "
                              f"set 1 <= datafree.g_steps <= datafree.kd_steps (got {self.g_steps}, {self.kd_steps})")
        if self.one_stage and not self.symmetric:
            raise ConfigError(f"datafree.one_stage=True needs a symmetric game (zskt, dfad); "
                              f"{cfg.algorithm!r} has its own generator loss: set datafree.one_stage=False")
        self.T = float(cfg.loss.get("T", 1.0))
        # The generator loss's weights: config keys loss.<name>, defaults in `loss_weights`.
        self.w = {k: float(cfg.loss.get(k, v)) for k, v in self.loss_weights.items()}
        self.workdir = None  # set by the loop when it supports it; else datafree.sample_dir is used
        super().__init__(cfg, teachers)
        h, w, c = self.image_shape
        if h != w:
            raise ConfigError(f"generators make square images; the teachers' images are {h}×{w}")
        self.nz = int(self.df.nz)
        self.generator = create_generator(self.df.generator, self.nz, int(self.df.ngf), h, c, dtype=self.dtype)
        self.batch_size = int(cfg.data.batch_size)
        self._sample_fn = None

    # -- the method: override these -------------------------------------------------------------
    def generator_loss(self, t, t_pooled, r_bn, s):
        """Loss G minimises with the student fixed: (loss, metrics). ``s`` is None when unused."""
        raise NotImplementedError

    def student_loss(self, s, t):
        return losses.kd(s, t, self.T)

    # -- pieces ---------------------------------------------------------------------------------
    def teacher_outputs(self, teacher_vars, x, with_bn: bool = False):
        """(logits over the union of the teachers' classes, mean |pooled|-ready features, R_bn).

        Gradients flow to ``x`` (the synthesis losses need them) but never to teacher variables.
        """
        logits, pooled, r_bn = [], [], jnp.zeros((), jnp.float32)
        for teacher, variables in zip(self.teachers, teacher_vars):
            variables = jax.lax.stop_gradient(variables)
            if with_bn:
                (t, feats), sown = teacher.module.apply(variables, x, train=False, mutable=["bn_stats"])
                r_bn = r_bn + priors.bn_statistics(sown["bn_stats"], variables["batch_stats"])
            else:
                t, feats = teacher.module.apply(variables, x, train=False)
            logits.append(t)
            pooled.append(feats["pooled"])
        return jnp.concatenate(logits, -1), jnp.concatenate(pooled, -1), r_bn

    def generate(self, params, batch_stats, z):
        """G(z) as the teachers' normalised inputs (BN in training mode, as the references leave G)
        and its new BN stats. A generator of [0, 1] images is normalised here; one whose images are
        normalised already (``normalised``, DFAD's) is used as it is."""
        x, upd = self.generator.apply({"params": params, "batch_stats": batch_stats}, z, train=True,
                                      mutable=["batch_stats"])
        return (x.astype(self.dtype) if self.generator.normalised else self.normalise(x)), upd["batch_stats"]

    def _z(self, rng):
        return self.shard_batch(jax.random.normal(rng, (self.batch_size, self.nz), jnp.float32))

    # -- state ----------------------------------------------------------------------------------
    def init(self, rng, batch):
        k_s, k_g, k_gs = jax.random.split(rng, 3)
        student = self.init_student(k_s, steps=self.total_steps * self.kd_steps)
        g_vars = self.generator.init(k_g, jnp.zeros((2, self.nz), jnp.float32), train=False)
        g_tx = make_optimizer(self.df.g_optim, max(self.total_steps * self.g_steps, 1))
        generator = TrainState.create(g_vars["params"], g_tx, k_gs, g_vars.get("batch_stats", {}))
        return GeneratorKDState(step=jnp.zeros((), jnp.int32), student=student, generator=generator)

    # -- the compiled step ----------------------------------------------------------------------
    def _synthesis_step(self, teacher_vars, carry, _):
        student, gen = carry
        gen, rng = gen.next_rng()
        z = self._z(rng)

        def loss_fn(g_params):
            x, g_bs = self.generate(g_params, gen.batch_stats, z)
            t, pooled, r_bn = self.teacher_outputs(teacher_vars, x, with_bn=self.synthesis_uses_bn)
            s = None
            if self.synthesis_uses_student:
                # The student is fixed here: its parameters and running statistics are not updated.
                s, _, _ = self.apply_student(jax.lax.stop_gradient(student.params), student.batch_stats, x, train=True)
            loss, metrics = self.generator_loss(t, pooled, r_bn, s)
            return loss, (g_bs, metrics)

        (loss, (g_bs, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(gen.params)
        gen = gen.apply_gradients(grads, batch_stats=g_bs)
        return (student, gen), {"g_loss": loss, **metrics}

    def _student_step(self, teacher_vars, carry, _):
        student, gen = carry
        gen, rng = gen.next_rng()
        x = jax.lax.stop_gradient(self.generate(gen.params, gen.batch_stats, self._z(rng))[0])
        t, _, _ = self.teacher_outputs(teacher_vars, x)
        t = jax.lax.stop_gradient(t)

        def loss_fn(params):
            s, _, bs = self.apply_student(params, student.batch_stats, x, train=True)
            return self.student_loss(s, t), bs

        (loss, bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(student.params)
        student = student.apply_gradients(grads, batch_stats=bs)
        return (student, gen), {"loss": loss}

    def _joint_step(self, teacher_vars, carry, _):
        """One backward pass, both players: G gets −∇(student loss) through the reversal at x."""
        student, gen = carry
        gen, rng = gen.next_rng()
        z = self._z(rng)

        def loss_fn(params, g_params):
            x, g_bs = self.generate(g_params, gen.batch_stats, z)
            x = adversarial.reverse_gradient(x)
            t, _, _ = self.teacher_outputs(teacher_vars, x)
            s, _, bs = self.apply_student(params, student.batch_stats, x, train=True)
            return self.student_loss(s, t), (bs, g_bs)

        (loss, (bs, g_bs)), (g_s, g_g) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
            student.params, gen.params)
        student = student.apply_gradients(g_s, batch_stats=bs)
        gen = gen.apply_gradients(g_g, batch_stats=g_bs)
        return (student, gen), {"loss": loss, "g_loss": -loss}

    def train_step(self, state, teacher_vars, batch):
        carry = (state.student, state.generator)
        metrics = {}
        if self.one_stage:
            # Same schedule as two-stage (g_steps generator and kd_steps student updates per unit),
            # but each generator update shares its backward pass with one student update.
            carry, m = scan_steps(lambda c, i: self._joint_step(teacher_vars, c, i), carry, None, self.g_steps)
            metrics.update(m)
            if self.kd_steps > self.g_steps:
                carry, m = scan_steps(lambda c, i: self._student_step(teacher_vars, c, i), carry, None,
                                        self.kd_steps - self.g_steps)
                metrics["loss"] = jnp.concatenate([metrics["loss"], m["loss"]])
        else:
            if self.g_steps:
                carry, m = scan_steps(lambda c, i: self._synthesis_step(teacher_vars, c, i), carry, None,
                                        self.g_steps)
                metrics.update(m)
            carry, m = scan_steps(lambda c, i: self._student_step(teacher_vars, c, i), carry, None, self.kd_steps)
            metrics.update(m)
        student, gen = carry
        metrics = {k: v.mean() for k, v in metrics.items()}
        return state.replace(step=state.step + 1, student=student, generator=gen), metrics

    # -- evaluation and export ------------------------------------------------------------------
    def samples(self, state, n: int = 64, seed: int = 0):
        """``n`` generator samples in [0, 1] (a fixed z, so grids of one run are comparable)."""
        if self._sample_fn is None:
            self._sample_fn = jax.jit(lambda gen, z: self.to_pixels(self.generate(gen.params, gen.batch_stats, z)[0]))
        z = jax.random.normal(jax.random.PRNGKey(seed), (n, self.nz), jnp.float32)
        return self._sample_fn(state.generator, z)

    def evaluate(self, state, mesh) -> dict:
        """The student's accuracy; a grid of generator samples in the workdir (or datafree.sample_dir)."""
        where = self.workdir or self.df.sample_dir
        if self.df.sample_grids and where:
            step = int(jax.device_get(state.step))
            save_grid(os.path.join(where, f"samples_{step:06d}.png"), self.samples(state),
                      writer=getattr(self, "writer", None), step=step, tag="samples/generator")
        return super().evaluate(state, mesh)


class DAFL(GeneratorDistillation):
    """Data-Free Learning of student networks: G makes images the teacher classifies confidently
    (one-hot), with strong features (activation) and balanced classes (balance)."""

    name = "dafl"
    synthesis_uses_student = False
    loss_weights = dict(oh=1.0, act=0.001, bal=20.0)

    def generator_loss(self, t, t_pooled, r_bn, s):
        l_oh, l_act, l_bal = priors.one_hot(t), priors.activation(t_pooled), priors.balance(t)
        loss = self.w["oh"] * l_oh + self.w["act"] * l_act + self.w["bal"] * l_bal
        return loss, {"oh": l_oh, "act": l_act, "bal": l_bal}


class ZSKT(GeneratorDistillation):
    """Zero-Shot Knowledge Transfer: G maximises ``kd(s, t, T=1)``, the student minimises it."""

    name = "zskt"
    symmetric = True

    def __init__(self, cfg, teachers):
        super().__init__(cfg, teachers)
        if self.T != 1.0:
            raise ConfigError(f"zskt's game is kd at temperature 1; got loss.T={self.T}: set loss.T=1")

    def generator_loss(self, t, t_pooled, r_bn, s):
        l_kd = self.student_loss(s, t)
        return -l_kd, {"g_kd": l_kd}


def l1_logits(s, t):
    """Mean absolute difference of student and teacher logits (PyTorch ``F.l1_loss``)."""
    return jnp.mean(jnp.abs(s.astype(jnp.float32) - t.astype(jnp.float32)))


class DFAD(GeneratorDistillation):
    """Data-Free Adversarial Distillation: G maximises ``L1(s, t)``, the student minimises it
    (5 student steps per generator step by default)."""

    name = "dfad"
    symmetric = True

    def student_loss(self, s, t):
        return l1_logits(s, t)

    def generator_loss(self, t, t_pooled, r_bn, s):
        l1 = l1_logits(s, t)
        return -l1, {"g_l1": l1}


class DFQ(GeneratorDistillation):
    """DFQ-style synthesis: G seeks images the student still gets wrong (``L_adv = −kd``) that match
    the teacher's BN statistics, are confidently classified and balanced."""

    name = "dfq"
    synthesis_uses_bn = True
    loss_weights = dict(adv=1.0, bn=1.0, oh=1.0, bal=20.0)

    def generator_loss(self, t, t_pooled, r_bn, s):
        l_adv = -losses.kd(s, t, self.T)
        l_oh, l_bal = priors.one_hot(t), priors.balance(t)
        loss = self.w["adv"] * l_adv + self.w["bn"] * r_bn + self.w["oh"] * l_oh + self.w["bal"] * l_bal
        return loss, {"adv": l_adv, "bn": r_bn, "oh": l_oh, "bal": l_bal}
