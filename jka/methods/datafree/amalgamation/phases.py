"""The job's three kinds of phase (the package docstring has the math): :data:`GAN`, :data:`DUAL` and
:data:`ASSEMBLE`, all reading the job's section. What a phase receives frozen (G, earlier dual blocks)
comes as options and is kept in the state's buffers, so a resumed phase needs nothing else.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jka.errors import ConfigError
from jka.losses import priors
from jka.methods import common
from jka.methods.api import Method
from jka.methods.datafree import common as df
from jka.methods.datafree.amalgamation.networks import (ChannelFilter, DualBlock, GroupStackGenerator, regroup,
                                                        small_cnn_input_shapes, teacher_from, teacher_heads)
from jka.methods.datafree.amalgamation.objectives import claims, gan_loss, reproduce_loss, union_logits
from jka.models.small_cnn import NUM_BLOCKS, small_cnn_channels
from jka.settings import BOOL, integer, number, optional, setting
from jka.train.program import Exported, Program, Split
from jka.train.state import Optim, State, make_optimizer
from jka.train.update import minimize

WEIGHT = number(0)


# The paper's method by default: per-teacher terms, no BN-statistics prior, the regrouped dual network as
# the student. ``joint``, ``bn`` and ``assemble_steps`` are jka's variants (docs/methods.md, measured).
@dataclasses.dataclass(frozen=True)
class Settings:
    alpha: float = setting(0.1, WEIGHT, "weight of L_act (the teachers' activations)")
    beta: float = setting(5.0, WEIGHT, "weight of L_ie (balance: information entropy of the batch)")
    gamma: Optional[float] = setting(None, optional(WEIGHT, "None (0.1 for multi-label teachers, else 0)"),
                                     "weight of L_dis (sparsity)")
    inter: float = setting(1.0, WEIGHT, "weight of the intermediate-group consistency")
    stream1: float = setting(1.0, WEIGHT, "dual loss weight of the image stream")
    stream2: float = setting(0.5, WEIGHT, "dual loss weight of the generator-feature stream")
    joint: bool = setting(False, BOOL, "jka's variant: every term over the union logits (multi-class teachers)")
    bn: float = setting(0.0, WEIGHT, "jka's variant: weight of each teacher's R_bn on the images it claims")
    train_heads: bool = setting(True, BOOL, "per-teacher heads trained with the last dual block")
    assemble_steps: int = setting(0, integer(0), "jka's variant: end-to-end steps of the regrouped student (0: none)")
    assemble_lr: float = setting(1e-3, number(0), "Adam lr of the assemble phase")
    nz: int = setting(64, integer(1), "size of the latent code z")
    ngf: int = setting(64, integer(1), "the group-stack generator's width")
    filter_reduction: int = setting(4, integer(1), "the channel filters' reduction r (C → C/r → C)")
    multilabel: bool = setting(False, BOOL, "multi-label teachers (sigmoid outputs)")
    gan_steps: int = setting(1500, integer(1), "steps of the GAN phase")
    gan_lr: float = setting(1e-3, number(0), "Adam lr of the GAN phase")
    dual_steps: int = setting(800, integer(1), "steps of each dual-block phase")
    dual_lr: float = setting(1e-3, number(0), "Adam lr of the dual-block phases")
    batch_size: int = setting(128, integer(1), "images per step of every phase (its data.batch_size)")


def resolved(s: Settings) -> Settings:
    """``s`` with ``gamma`` chosen where it is None: 0.1 for multi-label teachers, else 0."""
    return s if s.gamma is not None else dataclasses.replace(s, gamma=0.1 if s.multilabel else 0.0)


def adam(lr, steps: int):
    return make_optimizer(Optim(name="adam", lr=float(lr), schedule="constant", weight_decay=0.0), steps)


def requested_classes(cfg, teachers) -> list:
    """``data.classes`` (default: every teacher's classes), in teacher order: the student's outputs."""
    union = common.union_classes(teachers)
    requested = cfg.data.get("classes", None)
    if not requested:
        return union
    want = {int(c) for c in requested}
    missing = sorted(want - set(union))
    if missing:
        raise ConfigError(f"data.classes asks for {missing}, which no teacher predicts (teachers cover "
                          f"{sorted(set(union))}); request a subset of those")
    return [c for c in union if c in want]


@dataclasses.dataclass(frozen=True)
class Parts:
    """What the phases share (``label_idx``: per teacher, its outputs among the requested labels)."""

    s: Settings
    teachers: list
    data: Split
    width: float
    shapes: list                  # inputs of teacher blocks 1..B
    generator: GroupStackGenerator
    filter: ChannelFilter
    label_idx: list
    student: common.Net           # a small_cnn of the teachers' width over the requested labels
    normalise: Callable
    prepare: Callable
    z: Callable                   # rng -> a batch of latent codes, split over the devices


def parts(ctx) -> Parts:
    teachers = ctx.teachers
    for t in teachers:
        if t.arch != "small_cnn":
            raise ConfigError(f"datafree_amalgamation supports small_cnn teachers only (got {t.arch!r}); "
                              "see jka/methods/datafree/amalgamation for what another architecture needs")
    widths = {float(t.kwargs.get("width", 1.0)) for t in teachers}
    if len(widths) != 1:
        raise ConfigError(f"datafree_amalgamation needs teachers of one width, got {sorted(widths)}")
    s, width = resolved(ctx.settings), widths.pop()
    data = common.split(ctx.cfg, requested_classes(ctx.cfg, teachers))
    shapes = small_cnn_input_shapes(data.image_shape, width)
    want, batch = set(data.classes), int(ctx.cfg.data.batch_size)
    return Parts(
        s=s, teachers=teachers, data=data, width=width, shapes=shapes,
        generator=GroupStackGenerator(tuple(reversed(shapes)), s.nz, s.ngf), filter=ChannelFilter(s.filter_reduction),
        label_idx=[np.array([i for i, c in enumerate(t.classes) if c in want]) for t in teachers],
        student=common.Net.create("small_cnn", len(data.classes), jnp.float32, width=width),
        normalise=df.normaliser(data, ctx.dtype), prepare=common.preparer(ctx.cfg, data, ctx.dtype),
        z=lambda rng: ctx.shard(jax.random.normal(rng, (batch, s.nz))))


def generate(a: Parts, gen_vars, z, train: bool):
    """Outputs of groups 1..B (inputs of teacher blocks B..1; the last is the [0,1] image)."""
    if train:
        outs, upd = a.generator.apply(gen_vars, z, train=True, mutable=["batch_stats"])
        return outs, upd["batch_stats"]
    return a.generator.apply(gen_vars, z, train=False), gen_vars["batch_stats"]


def through_teacher(a: Parts, m: int, teacher_vars, filters, feat, start: int):
    """(logits, pooled) of teacher m from block ``start``'s input, through its filter unless block 1 or the head."""
    if 1 < start <= NUM_BLOCKS:
        feat = a.filter.apply({"params": filters[f"t{m}_b{start}"]}, feat)
    return teacher_from(a.teachers[m], teacher_vars[m], feat, start)[:2]


def targets(a: Parts, teacher_vars, img):
    """Each teacher's logits on the generated images, restricted to the requested labels."""
    return [teacher_from(t, v, img, 1)[0][:, idx] for t, v, idx in zip(a.teachers, teacher_vars, a.label_idx)]


def frozen_generator(gan_variables) -> dict:
    """The generator's variables and the filters from the GAN phase's exported model."""
    return {"generator": {"params": gan_variables["params"]["generator"], "batch_stats": gan_variables["batch_stats"]},
            "filters": gan_variables["params"]["filters"]}


class Pieces(NamedTuple):
    """One phase before it is a Program (the tests call its parts): the group it trains by minimising
    ``loss(params, state, teacher_vars, rng) -> (loss, (new batch stats, terms))``, its init, eval, export."""

    parts: Parts
    group: str
    init: Callable
    loss: Callable
    export: Callable
    predict: Optional[Callable] = None     # (state, raw images) -> the student's logits
    evaluate: Optional[Callable] = None    # default: accuracy of ``predict``
    start_from: Optional[Callable] = None


def program(ctx, name: str, p: Pieces) -> Program:
    """The phase ``p`` as the loop runs it, on generated images only."""
    a = p.parts

    def step(state, teacher_vars, batch):
        state, rng = state.next_rng()
        state, value, terms = minimize(state, p.group, lambda params: p.loss(params, state, teacher_vars, rng))
        return state.advance(), {"loss": value, **terms}

    evaluate = p.evaluate or common.accuracy(p.predict, a.data, int(ctx.cfg.data.batch_size),
                                             common.teacher_groups(a.data, a.teachers))
    return Program(name=name, data=a.data, teachers=a.teachers, batches=df.NO_DATA, steps=ctx.steps, init=p.init,
                   step=step, evaluate=evaluate, export=p.export, start_from=p.start_from,
                   learning_rate=common.learning_rate(ctx.cfg.optim, ctx.steps))


def gan(ctx) -> Pieces:
    """Phase 1: G and the filters against the frozen teachers (exported as ``dfa_group_stack_generator``)."""
    a = parts(ctx)
    s, n = a.s, len(a.teachers)

    def init(rng, batch):
        k_g, k_f, k_s = jax.random.split(rng, 3)
        gv = a.generator.init(k_g, jnp.zeros((2, s.nz)), train=False)
        filters = {}
        for m in range(n):
            for b in range(2, NUM_BLOCKS + 1):
                k_f, k = jax.random.split(k_f)
                filters[f"t{m}_b{b}"] = a.filter.init(k, jnp.zeros((1,) + a.shapes[b - 1]))["params"]
        return State.create(k_s, {"generator": gv, "filters": {"params": filters}},
                            {"gan": (("generator", "filters"), adam(s.gan_lr, ctx.steps))})

    def loss(params, state, teacher_vars, rng):
        gen_vars = {"params": params["generator"], "batch_stats": state.batch_stats["generator"]}
        outs, new_bs = generate(a, gen_vars, a.z(rng), True)
        img = a.normalise(outs[-1])
        ys, pooled, sown = zip(*[teacher_from(t, v, img, 1, collect_bn=True) for t, v in zip(a.teachers, teacher_vars)])
        l_bn = jnp.zeros(())
        if s.bn:  # each teacher's BN prior on the images it claims (all images when not joint)
            w = jax.lax.stop_gradient(claims(ys, a.label_idx)) if s.joint and not s.multilabel \
                else jnp.ones((img.shape[0], n))
            l_bn = jnp.mean(jnp.stack([priors.bn_statistics(sown[m], teacher_vars[m]["batch_stats"], w[:, m])
                                       for m in range(n)]))
        inter = [[through_teacher(a, m, teacher_vars, params["filters"], feat, NUM_BLOCKS - j)[0] for m in range(n)]
                 for j, feat in enumerate(outs[:-1])]  # group j+1 → input of teacher block B−j
        value, terms = gan_loss(s, list(ys), list(pooled), inter, a.label_idx, l_bn)
        return value, ({"generator": new_bs}, terms)

    def evaluate(state, ectx) -> dict:
        """How the teachers see the generated images: mean max-probability and class coverage."""
        z = jax.random.normal(jax.random.PRNGKey(1), (256, s.nz))
        outs, _ = generate(a, state.variables("generator"), z, False)
        out, ys = {}, []
        for m, t in enumerate(a.teachers):
            y = teacher_from(t, t.variables, a.normalise(outs[-1]), 1)[0]
            ys.append(y)
            out[f"teacher{m}_confidence"] = float(jax.nn.softmax(y, -1).max(-1).mean())
            out[f"teacher{m}_classes_hit"] = int(len(np.unique(np.asarray(jnp.argmax(y, -1)))))
        if not s.multilabel:  # which teacher claims each image in the union label space
            union = np.asarray(jnp.argmax(union_logits(ys, a.label_idx), -1))
            owner = np.searchsorted(np.cumsum([len(i) for i in a.label_idx]), union, side="right")
            out.update({f"teacher{m}_share": float(np.mean(owner == m)) for m in range(n)})
            out["union_classes_hit"] = int(len(np.unique(union)))
        return out

    def export(state):
        return Exported("dfa_group_stack_generator", len(a.data.classes),
                        {"params": dict(state.params), "batch_stats": state.batch_stats["generator"]},
                        {"classes": a.data.classes, **a.data.input_info()})

    return Pieces(a, "gan", init, loss, export, evaluate=evaluate)


def dual(ctx) -> Pieces:
    """Phase 2: dual block ``block`` (1..B), G and the filters (option ``gan``) and the earlier blocks
    (``prev``) frozen. Exports blocks 1..``block`` (``dfa_dual_blocks``), after B the regrouped student."""
    a = parts(ctx)
    s, b = a.s, int(ctx.options["block"])
    if not 1 <= b <= NUM_BLOCKS:
        raise ConfigError(f"the dual block must be in 1..{NUM_BLOCKS}, got {b}")
    blocks = [DualBlock(k, c) for k, c in enumerate(small_cnn_channels(a.width), 1)]
    frozen = {**frozen_generator(ctx.options["gan"]), "prev": dict(ctx.options.get("prev") or {})}

    def init(rng, batch):
        k_b, k_s = jax.random.split(rng)
        v = blocks[b - 1].init(k_b, jnp.zeros((1,) + a.shapes[b - 1]), train=False)
        heads = {}
        if b == NUM_BLOCKS and s.train_heads:  # per-teacher heads, from the teachers' linear layers
            heads = jax.tree.map(jnp.asarray, teacher_heads([t.variables for t in a.teachers], a.label_idx))
        return State.create(k_s, {"block": v, "heads": {"params": heads}},
                            {"dual": (("block", "heads"), adam(s.dual_lr, ctx.steps))},
                            jax.tree.map(jnp.asarray, frozen))

    def run_prev(prev, x):
        for k in range(1, b):
            x = blocks[k - 1].apply(prev[f"block{k}"], x, train=False)
        return x

    def heads(frozen, teacher_vars, feat, head_params):
        """Per-teacher logits over the requested labels from block b's output: the teacher's blocks after b
        (via its filter), or after block B the trained head ``head_params['t<m>']`` if any."""
        out = []
        for m in range(len(a.teachers)):
            if b == NUM_BLOCKS and head_params:
                p = head_params[f"t{m}"]
                out.append(jnp.mean(feat, axis=(1, 2)) @ p["kernel"] + p["bias"])
            else:
                out.append(through_teacher(a, m, teacher_vars, frozen["filters"], feat, b + 1)[0][:, a.label_idx[m]])
        return out

    def loss(params, state, teacher_vars, rng):
        frozen = state.buffers
        outs = [jax.lax.stop_gradient(o) for o in generate(a, frozen["generator"], a.z(rng), False)[0]]
        img = a.normalise(outs[-1])
        want = targets(a, teacher_vars, img)
        stream1_in = run_prev(frozen["prev"], img)
        stream2_in = img if b == 1 else outs[NUM_BLOCKS - b]  # G's feature shaped like block b's input
        block = {"params": params["block"], "batch_stats": state.batch_stats["block"]}
        # BN running statistics from stream 1 only: it is what the student computes at test time
        f1, upd = blocks[b - 1].apply(block, stream1_in, train=True, mutable=["batch_stats"])
        f2, _ = blocks[b - 1].apply(block, stream2_in, train=True, mutable=["batch_stats"])
        l1 = reproduce_loss(s, heads(frozen, teacher_vars, f1, params["heads"]), want)
        l2 = reproduce_loss(s, heads(frozen, teacher_vars, f2, params["heads"]), want)
        return s.stream1 * l1 + s.stream2 * l2, ({"block": upd["batch_stats"]}, {"stream1": l1, "stream2": l2})

    def predict(state, images):
        """Dual blocks 1..b, then the teachers' blocks after b: concatenated logits (for b = B, the student's)."""
        x = run_prev(state.buffers["prev"], a.prepare(None, images, augment=False).astype(jnp.float32))
        x = blocks[b - 1].apply(state.variables("block"), x, train=False)
        teacher_vars = [t.variables for t in a.teachers]
        return jnp.concatenate(heads(state.buffers, teacher_vars, x, state.params["heads"]), -1)

    def export(state):
        done = {**state.buffers["prev"], f"block{b}": state.variables("block")}
        if b < NUM_BLOCKS:
            return Exported("dfa_dual_blocks", len(a.data.classes), {"blocks": done},
                            {"classes": a.data.classes, **a.data.input_info()})
        variables = regroup(done, [t.variables for t in a.teachers], a.label_idx, state.params["heads"] or None)
        return common.exported(a.student, variables, a.data)

    return Pieces(a, "dual", init, loss, export, predict)


def assemble(ctx) -> Pieces:
    """Phase 4: the regrouped student (``train.init_from``) trained end to end with block B's dual loss."""
    a = parts(ctx)
    net, frozen = a.student, {"generator": frozen_generator(ctx.options["gan"])["generator"]}

    def init(rng, batch):
        v = net.init(rng, jnp.zeros((1,) + a.data.image_shape))
        return State.create(rng, {"student": v}, {"student": (("student",), adam(a.s.assemble_lr, ctx.steps))},
                            jax.tree.map(jnp.asarray, frozen))

    def start_from(state, variables, info):
        group = state.group("student")
        return State.create(state.rng, {"student": jax.tree.map(jnp.asarray, variables)},
                            {"student": (group.parts, group.tx)}, state.buffers)

    def loss(params, state, teacher_vars, rng):
        img = a.normalise(jax.lax.stop_gradient(generate(a, state.buffers["generator"], a.z(rng), False)[0][-1]))
        want = targets(a, teacher_vars, img)
        y, _, bs = net.forward(params, state.batch_stats, img, train=True)
        value = reproduce_loss(a.s, jnp.split(y, np.cumsum([len(i) for i in a.label_idx])[:-1], axis=-1), want)
        return value, ({"student": bs}, {"reproduce": value})

    def predict(state, images):
        return net.apply(state.variables("student"), a.prepare(None, images, augment=False).astype(jnp.float32),
                         train=False)[0]

    return Pieces(a, "student", init, loss, common.export_part(net, a.data), predict, start_from=start_from)


SECTION = "datafree_amalgamation"
GAN = Method("dfa_gan", build=lambda ctx: program(ctx, "dfa_gan", gan(ctx)), settings=Settings, section=SECTION)
DUAL = Method("dfa_dual", build=lambda ctx: program(ctx, "dfa_dual", dual(ctx)), settings=Settings, section=SECTION)
ASSEMBLE = Method("dfa_assemble", build=lambda ctx: program(ctx, "dfa_assemble", assemble(ctx)), settings=Settings,
                  section=SECTION)
