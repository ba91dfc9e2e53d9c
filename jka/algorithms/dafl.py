"""Generator-based data-free distillation (SPEC §5) and DAFL.

:class:`GeneratorDistillation` is shared by DAFL, ZSKT, DFAD and DFQ: a generator G maps z ~ N(0, I)
to images in [0, 1], normalised with the dataset's mean/std before the frozen teacher(s) and the
student see them. One training step (one schedule unit, counted by ``train.steps``) is ONE compiled
function: ``g_steps`` synthesis steps (G minimises the method's ``generator_loss``, student fixed)
then ``kd_steps`` student steps on fresh G samples (student minimises ``student_loss``), each a
``lax.scan``. With ``datafree.one_stage=True`` (symmetric methods: ZSKT, DFAD) the schedule is
the same, but each generator step is merged with a student step: one backward pass of the student
loss through a gradient-reversal identity at G's output updates both players (SPEC §5.1), so a unit
is ``g_steps`` joint steps + ``kd_steps − g_steps`` student steps.

The teacher is never updated; in the synthesis losses gradients flow through it to the image
(its variables are stopped). No real image reaches the step (:class:`DataFreeAlgorithm`).

DAFL: ``L_G = oh + 0.001·act + 20·bal`` (teacher only); student ``kd(s, t, T)``.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
from flax import struct

from jka import adversarial, losses
from jka.algorithms.datafree_base import DataFreeAlgorithm
from jka.data.augment import to_float
from jka.errors import ConfigError, unknown_choice
from jka.losses import priors
from jka.models.generators import create_generator, save_grid
from jka.recipes import base_config, digits_teacher
from jka.synthesis import scan_steps
from jka.train.state import TrainState, make_optimizer


@struct.dataclass
class GeneratorKDState:
    """The players of a generator-based data-free run; the loop reads ``step`` only."""

    step: jax.Array
    student: TrainState
    generator: TrainState


DATAFREE_DEFAULTS = dict(
    generator="generator", nz=256, ngf=64, g_steps=1, kd_steps=5, one_stage=False, sample_dir="",
    sample_grids=True, g_optim=dict(name="adam", lr=1e-3, b1=0.5, b2=0.999, schedule="cosine",
                                    weight_decay=0.0, warmup_steps=0, grad_clip=None))


def datafree_section(cfg) -> ml_collections.ConfigDict:
    """``cfg.datafree`` with every default filled in (configs may set only what they change)."""
    out = ml_collections.ConfigDict(DATAFREE_DEFAULTS)
    given = cfg.get("datafree", None)
    if given is not None:
        out.update(given.to_dict() if hasattr(given, "to_dict") else dict(given))
    return out


class GeneratorDistillation(DataFreeAlgorithm):
    """Base of the generator-based methods. Subclasses define the two losses below."""

    name = "base"
    symmetric = False            # generator_loss == −student_loss: one_stage is allowed
    loss_weights: dict = {}      # weights of the generator loss's terms (config: loss.<name>)
    synthesis_uses_student = True
    synthesis_uses_bn = False

    def __init__(self, cfg, teachers):
        self.df = datafree_section(cfg)
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
        """G(z) in [0, 1] (BN in training mode, as the references leave G) and its new BN stats."""
        x, upd = self.generator.apply({"params": params, "batch_stats": batch_stats}, z, train=True,
                                      mutable=["batch_stats"])
        return x, upd["batch_stats"]

    def normalise(self, x01):
        return to_float(x01, self.mean, self.std).astype(self.dtype)

    def _z(self, rng):
        return self.shard_batch(jax.random.normal(rng, (self.batch_size, self.nz), jnp.float32))

    # -- state ----------------------------------------------------------------------------------
    def init(self, rng, batch):
        k_s, k_g, k_gs = jax.random.split(rng, 3)
        student = self.init_student(k_s)
        student = student.replace(tx=make_optimizer(self.cfg.optim, self.total_steps * self.kd_steps),
                                  opt_state=None)
        student = student.replace(opt_state=student.tx.init(student.params))
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
            x01, g_bs = self.generate(g_params, gen.batch_stats, z)
            x = self.normalise(x01)
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
        x01, _ = self.generate(gen.params, gen.batch_stats, self._z(rng))
        x = jax.lax.stop_gradient(self.normalise(x01))
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
            x01, g_bs = self.generate(g_params, gen.batch_stats, z)
            x = self.normalise(adversarial.reverse_gradient(x01))
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
    def predict(self, state, images):
        x = self.prepare(None, images, augment=False)
        logits, _, _ = self.apply_student(state.student.params, state.student.batch_stats, x, train=False)
        return logits

    def samples(self, state, n: int = 64, seed: int = 0):
        """``n`` generator samples in [0, 1] (a fixed z, so grids of one run are comparable)."""
        if self._sample_fn is None:
            def sample(gen, z):
                return self.generator.apply({"params": gen.params, "batch_stats": gen.batch_stats}, z,
                                            train=True, mutable=["batch_stats"])[0]
            self._sample_fn = jax.jit(sample)
        z = jax.random.normal(jax.random.PRNGKey(seed), (n, self.nz), jnp.float32)
        return self._sample_fn(state.generator, z)

    def sample_directory(self):
        return self.workdir or (self.df.sample_dir or None)

    def evaluate(self, state, mesh) -> dict:
        out = super().evaluate(state, mesh)
        where = self.sample_directory()
        if self.df.sample_grids and where:
            os.makedirs(where, exist_ok=True)
            step = int(jax.device_get(state.step))
            save_grid(self.samples(state), os.path.join(where, f"samples_{step:06d}.png"),
                      title=f"{self.name} generator, step {step}")
        return out

    def export(self, state):
        return (self.cfg.model.name, len(self.student_classes), state.student.variables,
                {"classes": self.student_classes, "kwargs": self.student_kwargs})


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


# -- config builders (shared by configs/datafree/*.py) ----------------------------------------------

def digits_teacher_spec(workdir: str = "teacher"):
    """The digits teacher (small_cnn, all ten classes, ≥ 0.97), trained first when ``workdir`` is empty.

    A relative ``workdir`` is inside the run's workdir; pass an absolute one to share a teacher."""
    return [dict(workdir=workdir, config=digits_teacher())]


def _loss_weights(algorithm: str) -> dict:
    """The generator-loss weights of ``algorithm`` (empty for games without weights: ZSKT, DFAD)."""
    from jka import algorithms

    return dict(algorithms.get(algorithm).loss_weights)


def digits_datafree(algorithm: str, steps: int, kd_steps: int = 5, g_steps: int = 1, T: float = 1.0,
                    student_width: float = 0.5, **datafree) -> ml_collections.ConfigDict:
    """A generator-based data-free run on 8×8 digits: teacher small_cnn → student small_cnn(width)."""
    # Digits-specific choices (measured on a shared 2-core CPU, DFAD, 100 units): batch 64 rather
    # than 32 covers more of the teacher's classes per step (mode collapse is what caps these
    # games at ~0.5); an 8×8 generator needs few channels (ngf 16: 64→32→16, ~4× fewer MACs than
    # ngf 32; not separately ablated); student SGD lr 0.1 (as the DFAD reference) and generator Adam
    # lr 5e-3 (0.635 vs 0.609 at lr 1e-3 after 100 units: the generator moves between classes faster).
    cfg = base_config(algorithm=algorithm)
    cfg.teachers = digits_teacher_spec()
    cfg.model.name = "small_cnn"
    cfg.model.kwargs = dict(width=student_width)
    cfg.data.batch_size = 64
    cfg.loss.T = T
    cfg.loss.update(_loss_weights(algorithm))
    cfg.optim.lr = 0.1
    cfg.optim.weight_decay = 5e-4
    cfg.train.steps = steps
    cfg.train.log_every = 25
    cfg.train.eval_every = 50
    cfg.datafree = ml_collections.ConfigDict(DATAFREE_DEFAULTS)
    cfg.datafree.nz = 64
    cfg.datafree.ngf = 16
    cfg.datafree.g_optim.lr = 5e-3
    cfg.datafree.kd_steps = kd_steps
    cfg.datafree.g_steps = g_steps
    cfg.datafree.update(datafree)
    return cfg


CIFAR10_PAIRS = {
    "resnet34_resnet18": ("cifar_resnet34", "cifar_resnet18"),
    "wrn40_2_wrn16_1": ("wrn40_2", "wrn16_1"),
    "wrn40_2_wrn40_1": ("wrn40_2", "wrn40_1"),
    "wrn40_2_wrn16_2": ("wrn40_2", "wrn16_2"),
}


def cifar10_datafree(algorithm: str, pair: str, **datafree) -> ml_collections.ConfigDict:
    """A CIFAR-10 data-free run for a SPEC §7 pair; the teacher is a converted checkpoint.

    ``teachers[0].workdir`` must hold an exported model (``model/model.json`` +
    ``variables.msgpack``), e.g. written by the PyTorch converter from a KAmalEngine checkpoint.
    The real CIFAR-10 test split (tfds) is only used to evaluate the student.
    """
    if pair not in CIFAR10_PAIRS:
        raise unknown_choice("pair", pair, tuple(CIFAR10_PAIRS))
    teacher, student = CIFAR10_PAIRS[pair]
    cfg = base_config(algorithm=algorithm)
    cfg.loss.update(_loss_weights(algorithm))
    cfg.teachers = [dict(workdir=f"checkpoints/cifar10_{teacher}", classes=list(range(10)))]
    cfg.data.name = "cifar10"
    cfg.data.image_size = 32
    cfg.data.batch_size = 256
    cfg.model.name = student
    cfg.optim.name = "sgd"
    cfg.optim.lr = 0.1
    cfg.optim.weight_decay = 5e-4
    cfg.optim.schedule = "cosine"
    cfg.loss.T = 1.0
    cfg.train.steps = 2000
    cfg.train.log_every = 20
    cfg.train.eval_every = 200
    cfg.train.checkpoint_every = 200
    cfg.datafree = ml_collections.ConfigDict(DATAFREE_DEFAULTS)
    cfg.datafree.update(datafree)
    return cfg
