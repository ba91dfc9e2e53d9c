"""The three kinds of training phase of data-free amalgamation (the package docstring has the math):
:class:`DualGAN` (generator + filters), :class:`DualBlocks` (one dual block at a time) and
:class:`Assemble` (the regrouped student end to end). What a phase receives frozen (the generator,
earlier dual blocks) the job (:mod:`.job`) hands it as constructor options; it is kept in the
phase's state, so a resumed phase needs nothing else."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import struct

from jka import models
from jka.algorithms.datafree.amalgamation.networks import (ChannelFilter, DualBlock, GroupStackGenerator, regroup,
                                                           small_cnn_input_shapes, teacher_from)
from jka.algorithms.datafree.amalgamation.objectives import claims, gan_loss, reproduce_loss, union_logits
from jka.algorithms.datafree.base import DataFreeAlgorithm
from jka.config import section
from jka.errors import ConfigError
from jka.losses import priors
from jka.models.small_cnn import NUM_BLOCKS, small_cnn_channels
from jka.train.state import TrainState, make_optimizer

# The paper's method by default: per-teacher terms, no BN-statistics prior, the regrouped dual network as
# the student. ``joint``, ``bn`` and ``assemble_steps`` are jka's variants (docs/methods.md, measured).
DEFAULTS = dict(alpha=0.1, beta=5.0, gamma=None, inter=1.0, stream1=1.0, stream2=0.5, joint=False, bn=0.0,
                train_heads=True, assemble_steps=0, assemble_lr=1e-3, nz=64, ngf=64,
                filter_reduction=4, multilabel=False, gan_steps=1500, gan_lr=1e-3, dual_steps=800,
                dual_lr=1e-3, batch_size=128)


def settings(cfg) -> ml_collections.ConfigDict:
    """``cfg.amalgamation`` with every default filled in."""
    s = section(cfg, "amalgamation", DEFAULTS, "datafree_amalgamation")
    if s.gamma is None:
        s.gamma = 0.1 if s.multilabel else 0.0
    return s


def adam(lr, steps):
    oc = ml_collections.ConfigDict(dict(name="adam", lr=float(lr), schedule="constant", weight_decay=0.0,
                                        warmup_steps=0, grad_clip=None, momentum=0.9, nesterov=False))
    return make_optimizer(oc, steps)


class _Amalgamation(DataFreeAlgorithm):
    """What the phases share: small_cnn teachers of one width, the requested labels, G, the filters."""

    name = "base"

    def __init__(self, cfg, teachers):
        for t in teachers:
            if t.arch != "small_cnn":
                raise ConfigError(f"datafree_amalgamation supports small_cnn teachers only (got {t.arch!r}); "
                                  "see jka/algorithms/datafree/amalgamation for what another architecture needs")
        widths = {float(t.kwargs.get("width", 1.0)) for t in teachers}
        if len(widths) != 1:
            raise ConfigError(f"datafree_amalgamation needs teachers of one width, got {sorted(widths)}")
        self.s = settings(cfg)
        super().__init__(cfg, teachers)
        self.width = widths.pop()
        self.shapes = small_cnn_input_shapes(self.image_shape, self.width)  # inputs of blocks 1..B
        self.generator = GroupStackGenerator(tuple(reversed(self.shapes)), int(self.s.nz), int(self.s.ngf))
        self.filter = ChannelFilter(int(self.s.filter_reduction))
        self.batch = int(cfg.data.batch_size)
        # requested labels: student classes; per teacher the output indices it covers
        want = set(self.student_classes)
        self.label_idx = [np.array([i for i, c in enumerate(t.classes) if c in want]) for t in teachers]

    def default_student_classes(self, cfg, num_classes):
        """The requested label set ``data.classes`` (default: every teacher's classes), in teacher
        order: the student's outputs are teacher 1's requested classes, then teacher 2's, ..."""
        union = super().default_student_classes(cfg, num_classes)
        requested = cfg.data.get("classes", None)
        if not requested:
            return union
        want = {int(c) for c in requested}
        missing = sorted(want - set(union))
        if missing:
            raise ConfigError(f"data.classes asks for {missing}, which no teacher predicts (teachers cover "
                              f"{sorted(set(union))}); request a subset of those")
        return [c for c in union if c in want]

    def generate(self, gen_vars, z, train: bool):
        """Outputs of groups 1..B (inputs of teacher blocks B..1; the last is the [0,1] image)."""
        if train:
            outs, upd = self.generator.apply(gen_vars, z, train=True, mutable=["batch_stats"])
            return outs, upd["batch_stats"]
        return self.generator.apply(gen_vars, z, train=False), gen_vars["batch_stats"]

    def z(self, rng):
        return self.shard_batch(jax.random.normal(rng, (self.batch, int(self.s.nz))))

    def through_teacher(self, m, teacher_vars, filters, feat, start: int):
        """(logits, pooled) of teacher m from the input of block ``start``; a feature entering a block
        after the first (not the head) passes teacher m's filter first."""
        if 1 < start <= NUM_BLOCKS:
            feat = self.filter.apply({"params": filters[f"t{m}_b{start}"]}, feat)
        return teacher_from(self.teachers[m], teacher_vars[m], feat, start)[:2]

    def targets(self, teacher_vars, img):
        """Each teacher's logits on the generated images, restricted to the requested labels."""
        return [teacher_from(t, v, img, 1)[0][:, idx] for t, v, idx in zip(self.teachers, teacher_vars, self.label_idx)]


class DualGAN(_Amalgamation):
    """Phase 1: the group-stack generator and the filters against the frozen teachers. Exports
    ``{'params': {'generator', 'filters'}, 'batch_stats'}`` (arch ``dfa_group_stack_generator``)."""

    name = "dfa_gan"

    def init(self, rng, batch):
        k_g, k_f, k_s = jax.random.split(rng, 3)
        gv = self.generator.init(k_g, jnp.zeros((2, int(self.s.nz))), train=False)
        filters = {}
        for m in range(len(self.teachers)):
            for b in range(2, NUM_BLOCKS + 1):
                k_f, k = jax.random.split(k_f)
                filters[f"t{m}_b{b}"] = self.filter.init(k, jnp.zeros((1,) + self.shapes[b - 1]))["params"]
        params = {"generator": gv["params"], "filters": filters}
        return TrainState.create(params, adam(self.s.gan_lr, self.total_steps), k_s, gv["batch_stats"])

    def loss(self, params, batch_stats, teacher_vars, rng):
        outs, new_bs = self.generate({"params": params["generator"], "batch_stats": batch_stats}, self.z(rng), True)
        img = self.normalise(outs[-1])
        ys, pooled, sown = zip(*[teacher_from(t, v, img, 1, collect_bn=True)
                                 for t, v in zip(self.teachers, teacher_vars)])
        l_bn = jnp.zeros(())
        if self.s.bn:  # each teacher's BN prior on the images it claims (all images when not joint)
            w = jax.lax.stop_gradient(claims(ys, self.label_idx)) if self.s.joint and not self.s.multilabel \
                else jnp.ones((img.shape[0], len(self.teachers)))
            l_bn = jnp.mean(jnp.stack([priors.bn_statistics(sown[m], teacher_vars[m]["batch_stats"], w[:, m])
                                       for m in range(len(self.teachers))]))
        inter = [[self.through_teacher(m, teacher_vars, params["filters"], feat, NUM_BLOCKS - j)[0]
                  for m in range(len(self.teachers))]
                 for j, feat in enumerate(outs[:-1])]  # group j+1 → input of teacher block B−j
        loss, terms = gan_loss(self.s, list(ys), list(pooled), inter, self.label_idx, l_bn)
        return loss, (new_bs, terms)

    def train_step(self, state, teacher_vars, batch):
        state, rng = state.next_rng()
        (loss, (new_bs, terms)), g = jax.value_and_grad(self.loss, has_aux=True)(
            state.params, state.batch_stats, teacher_vars, rng)
        return state.apply_gradients(g, batch_stats=new_bs), {"loss": loss, **terms}

    def evaluate(self, state, mesh) -> dict:
        """How the teachers see the generated images: mean max-probability and class coverage."""
        z = jax.random.normal(jax.random.PRNGKey(1), (256, int(self.s.nz)))
        outs, _ = self.generate({"params": state.params["generator"], "batch_stats": state.batch_stats}, z, False)
        out, ys = {}, []
        for m, t in enumerate(self.teachers):
            y = teacher_from(t, t.variables, self.normalise(outs[-1]), 1)[0]
            ys.append(y)
            p = jax.nn.softmax(y, -1)
            out[f"teacher{m}_confidence"] = float(p.max(-1).mean())
            out[f"teacher{m}_classes_hit"] = int(len(np.unique(np.asarray(jnp.argmax(y, -1)))))
        if not self.s.multilabel:  # which teacher claims each image in the union label space
            owner = np.searchsorted(np.cumsum([len(i) for i in self.label_idx]),
                                    np.asarray(jnp.argmax(union_logits(ys, self.label_idx), -1)), side="right")
            for m in range(len(self.teachers)):
                out[f"teacher{m}_share"] = float(np.mean(owner == m))
            out["union_classes_hit"] = int(len(np.unique(np.asarray(jnp.argmax(union_logits(ys, self.label_idx), -1)))))
        return out

    def export(self, state):
        return ("dfa_group_stack_generator", len(self.student_classes),
                {"params": state.params, "batch_stats": state.batch_stats},
                {"classes": self.student_classes, **self.input_info()})


@struct.dataclass
class DualState:
    step: jax.Array
    block: TrainState
    frozen: dict


def frozen_generator(gan_variables) -> dict:
    """The generator's variables and the filters from :class:`DualGAN`'s exported model."""
    return {"generator": {"params": gan_variables["params"]["generator"], "batch_stats": gan_variables["batch_stats"]},
            "filters": gan_variables["params"]["filters"]}


class DualBlocks(_Amalgamation):
    """Phase 2: dual block ``block`` (1..B) with G, the filters and dual blocks < ``block`` frozen
    (``gan``: :class:`DualGAN`'s exported variables; ``prev``: the earlier blocks, from the previous
    phase's exported ``{'blocks': ...}``). Exports the earlier blocks and this one
    (``dfa_dual_blocks``), and after block B the regrouped student (``small_cnn``)."""

    name = "dfa_dual"

    def __init__(self, cfg, teachers, block: int, gan, prev=None):
        super().__init__(cfg, teachers)
        self.b = int(block)
        if not 1 <= self.b <= NUM_BLOCKS:
            raise ConfigError(f"the dual block must be in 1..{NUM_BLOCKS}, got {self.b}")
        chans = small_cnn_channels(self.width)
        self.blocks = [DualBlock(b, chans[b - 1]) for b in range(1, NUM_BLOCKS + 1)]
        self.frozen = {**frozen_generator(gan), "prev": dict(prev or {})}

    def init(self, rng, batch):
        k_b, k_s = jax.random.split(rng)
        v = self.blocks[self.b - 1].init(k_b, jnp.zeros((1,) + self.shapes[self.b - 1]), train=False)
        params = {"block": v["params"], "heads": {}}
        if self.b == NUM_BLOCKS and self.s.train_heads:  # per-teacher heads, from the teachers' linear layers
            params["heads"] = {f"t{m}": {"kernel": jnp.asarray(t.variables["params"]["linear"]["kernel"])[:, idx],
                                         "bias": jnp.asarray(t.variables["params"]["linear"]["bias"])[idx]}
                               for m, (t, idx) in enumerate(zip(self.teachers, self.label_idx))}
        st = TrainState.create(params, adam(self.s.dual_lr, self.total_steps), k_s, v["batch_stats"])
        return DualState(step=jnp.zeros((), jnp.int32), block=st, frozen=jax.tree.map(jnp.asarray, self.frozen))

    def run_prev(self, prev, x):
        for b in range(1, self.b):
            x = self.blocks[b - 1].apply(prev[f"block{b}"], x, train=False)
        return x

    def heads(self, frozen, teacher_vars, feat, head_params=None):
        """Per-teacher logits (restricted to the requested labels) from the output of block b: the
        teacher's blocks after b (via its filter); after block B its linear layer, or the student's
        own per-teacher head ``head_params['t<m>']`` (``train_heads``)."""
        out = []
        for m in range(len(self.teachers)):
            if self.b == NUM_BLOCKS and head_params:
                p = head_params[f"t{m}"]
                out.append(jnp.mean(feat, axis=(1, 2)) @ p["kernel"] + p["bias"])
                continue
            y = self.through_teacher(m, teacher_vars, frozen["filters"], feat, self.b + 1)[0]
            out.append(y[:, self.label_idx[m]])
        return out

    def loss(self, params, batch_stats, frozen, teacher_vars, rng):
        outs, _ = self.generate(frozen["generator"], self.z(rng), False)
        outs = [jax.lax.stop_gradient(o) for o in outs]
        img = self.normalise(outs[-1])
        targets = self.targets(teacher_vars, img)
        stream1_in = self.run_prev(frozen["prev"], img)
        stream2_in = img if self.b == 1 else outs[NUM_BLOCKS - self.b]  # G's feature shaped like block b's input
        block = {"params": params["block"], "batch_stats": batch_stats}
        # BN running statistics from stream 1 only: it is what the student computes at test time
        f1, upd = self.blocks[self.b - 1].apply(block, stream1_in, train=True, mutable=["batch_stats"])
        f2, _ = self.blocks[self.b - 1].apply(block, stream2_in, train=True, mutable=["batch_stats"])
        l1 = reproduce_loss(self.s, self.heads(frozen, teacher_vars, f1, params["heads"]), targets)
        l2 = reproduce_loss(self.s, self.heads(frozen, teacher_vars, f2, params["heads"]), targets)
        loss = self.s.stream1 * l1 + self.s.stream2 * l2
        return loss, (upd["batch_stats"], {"stream1": l1, "stream2": l2})

    def train_step(self, state, teacher_vars, batch):
        st, rng = state.block.next_rng()
        (loss, (new_bs, terms)), g = jax.value_and_grad(self.loss, has_aux=True)(
            st.params, st.batch_stats, state.frozen, teacher_vars, rng)
        st = st.apply_gradients(g, batch_stats=new_bs)
        return state.replace(step=state.step + 1, block=st), {"loss": loss, **terms}

    def all_blocks(self, state) -> dict:
        out = dict(state.frozen["prev"])
        out[f"block{self.b}"] = {"params": state.block.params["block"], "batch_stats": state.block.batch_stats}
        return out

    def predict(self, state, images):
        """Dual blocks 1..b, then each teacher's blocks after b (via its filter): concatenated logits.
        For b = B this is exactly the regrouped student."""
        x = self.prepare(None, images, augment=False)
        x = self.run_prev(state.frozen["prev"], x.astype(jnp.float32))
        block = {"params": state.block.params["block"], "batch_stats": state.block.batch_stats}
        x = self.blocks[self.b - 1].apply(block, x, train=False)
        teacher_vars = [t.variables for t in self.teachers]
        return jnp.concatenate(self.heads(state.frozen, teacher_vars, x, state.block.params["heads"]), -1)

    def export(self, state):
        blocks = self.all_blocks(state)
        if self.b < NUM_BLOCKS:
            return ("dfa_dual_blocks", len(self.student_classes), {"blocks": blocks},
                    {"classes": self.student_classes, **self.input_info()})
        heads = state.block.params["heads"] or None
        return self.export_student(regroup(blocks, [t.variables for t in self.teachers], self.label_idx, heads),
                                   arch="small_cnn", kwargs={"width": self.width})


class Assemble(_Amalgamation):
    """Phase 4: the regrouped student (``train.init_from``: the last dual phase) trained end to end,
    G frozen (``gan``), on generated images, with the dual network's loss at block B
    (``Σ_m CE`` per teacher + the union CE) on every layer at once."""

    name = "dfa_assemble"

    def __init__(self, cfg, teachers, gan):
        super().__init__(cfg, teachers)
        # the regrouped student: a small_cnn of the teachers' width (whatever cfg.model says)
        self.net = models.create("small_cnn", len(self.student_classes), width=self.width)
        self.frozen = {"generator": frozen_generator(gan)["generator"]}

    def init(self, rng, batch):
        v = self.net.init(rng, jnp.zeros((1,) + self.image_shape), train=False)
        st = TrainState.create(v["params"], adam(self.s.assemble_lr, self.total_steps), rng, v["batch_stats"])
        return DualState(step=jnp.zeros((), jnp.int32), block=st, frozen=jax.tree.map(jnp.asarray, self.frozen))

    def start_from(self, state, variables, info):
        loaded = jax.tree.map(jnp.asarray, variables)
        st = TrainState.create(loaded["params"], state.block.tx, state.block.rng, loaded["batch_stats"])
        return state.replace(block=st)

    def loss(self, params, batch_stats, frozen, teacher_vars, rng):
        img = self.normalise(jax.lax.stop_gradient(self.generate(frozen["generator"], self.z(rng), False)[0][-1]))
        targets = self.targets(teacher_vars, img)
        (y, _), upd = self.net.apply({"params": params, "batch_stats": batch_stats}, img, train=True,
                                     mutable=["batch_stats"])
        heads = jnp.split(y, np.cumsum([len(i) for i in self.label_idx])[:-1], axis=-1)
        loss = reproduce_loss(self.s, heads, targets)
        return loss, (upd["batch_stats"], {"reproduce": loss})

    # the same step as the dual phase: one TrainState (``block``) trained against frozen parts
    train_step = DualBlocks.train_step

    def predict(self, state, images):
        x = self.prepare(None, images, augment=False)
        return self.net.apply(state.block.variables, x.astype(jnp.float32), train=False)[0]

    def export(self, state):
        return self.export_student(state.block.variables, arch="small_cnn", kwargs={"width": self.width})
