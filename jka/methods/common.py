"""Parts most methods compose (plain functions, no base class): the run's data, the student network, input
preparation, a student's state, the step of a loss on real batches, accuracy, the exported student.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from jka import models
from jka.data import Batches, load_split, select_classes
from jka.data.augment import normalise, to_unit, viewer
from jka.errors import ConfigError
from jka.train.evaluate import classification_eval
from jka.train.program import Exported, Program, Split
from jka.train.state import State, make_optimizer, make_schedule
from jka.train.update import minimize


def union_classes(teachers) -> list[int]:
    """The dataset classes of several teachers' outputs, concatenated in teacher order."""
    return [c for t in teachers for c in t.classes]


def disjoint_union(teachers, method: str) -> list[int]:
    union = union_classes(teachers)
    if len(set(union)) != len(union):
        raise ConfigError(f"teachers' class subsets overlap ({union}); {method} needs disjoint subsets "
                          "(use 'adaptive' for overlapping teachers)")
    return union


def split(cfg, classes: Sequence[int] | None = None, train_classes: Sequence[int] | None = None) -> Split:
    """The run's data over ``classes`` (default ``data.classes``, else all); ``train_classes``: if others."""
    full = load_split(cfg.data, "train")
    if classes is None:
        given = cfg.data.get("classes", None)
        classes = list(range(full.num_classes)) if given is None else list(given)
    classes = list(classes)
    train = select_classes(full, classes if train_classes is None else list(train_classes))
    return Split(train, load_split(cfg.data, "test", classes), full.mean, full.std, classes)


@dataclasses.dataclass(frozen=True)
class Net:
    """A zoo network to train: its architecture, options and Flax module."""

    arch: str
    kwargs: dict
    module: Any

    @classmethod
    def create(cls, arch: str, num_classes: int, dtype, **kwargs) -> "Net":
        return cls(arch, dict(kwargs), models.create(arch, num_classes, dtype=dtype, **kwargs))

    def init(self, rng, x) -> dict:
        return self.module.init(rng, x, train=False)

    def apply(self, variables, x, train: bool):
        """(logits, features, new batch stats): BatchNorm updates its statistics when ``train``."""
        if train:
            (out, feats), upd = self.module.apply(variables, x, train=True, mutable=["batch_stats"])
            return out, feats, upd.get("batch_stats", {})
        out, feats = self.module.apply(variables, x, train=False)
        return out, feats, variables.get("batch_stats", {})

    def forward(self, params: dict, batch_stats: dict, x, train: bool, part: str = "student"):
        """:meth:`apply` on the variables of ``part`` of a state's ``params``/``batch_stats``."""
        return self.apply({"params": params[part], "batch_stats": batch_stats[part]}, x, train)


def feature_shapes(net: Net, teachers, image_shape, dtype, n: int = 2):
    """(the student's features, each teacher's) as shapes on ``n`` images of ``image_shape``, nothing run."""
    x = jax.ShapeDtypeStruct((n,) + tuple(image_shape), dtype)
    s_feats = jax.eval_shape(lambda x: net.module.init_with_output(jax.random.PRNGKey(0), x, train=False)[0][1], x)
    t_feats = [jax.eval_shape(lambda v, x, t=t: t(v, x)[1], t.variables, x) for t in teachers]
    return s_feats, t_feats


def student_net(ctx, num_classes: int) -> Net:
    """``cfg.model``'s network with ``num_classes`` outputs, computing in the run's dtype."""
    return Net.create(ctx.cfg.model.name, num_classes, ctx.dtype, **dict(ctx.cfg.model.get("kwargs", {})))


def preparer(cfg, data: Split, dtype) -> Callable:
    """``prepare(rng, images, augment=True)``: raw images → normalised inputs, augmented by ``data.augment``
    in pixel space (the crop pads black, as torchvision's ``RandomCrop`` before ``Normalize``)."""
    view = viewer(cfg.data.get("augment", {}))

    def prepare(rng, images, augment: bool = True):
        return normalise(view(rng, to_unit(images), augment), data.mean, data.std, dtype)

    return prepare


def batches(cfg, data: Split, with_labels: bool, with_index: bool = False):
    """Step-indexed batches of the training set; ``with_index``: each sample's row too (``'index'``)."""
    return Batches(data.train, int(cfg.data.batch_size), int(cfg.seed), with_labels=with_labels,
                   with_index=with_index)


def epoch_warmup(cfg, data: Split, epochs: float) -> Callable:
    """``weight(step)`` = min(e / ``epochs``, 1) (1 if ``epochs`` is 0) for the 1-based epoch e of ``step``,
    the remainder batch dropped: DKD's and ReviewKD's reference ramp."""
    per_epoch = max(1, len(data.train) // int(cfg.data.batch_size))

    def weight(step):
        if epochs <= 0:
            return jnp.float32(1.0)
        return jnp.minimum((jnp.asarray(step) // per_epoch + 1).astype(jnp.float32) / epochs, 1.0)

    return weight


def student_state(net: Net, sample: Callable, optim, steps: int, extra: Callable | None = None) -> Callable:
    """``init(rng, batch) -> State``: the student initialised on ``sample(batch)`` and ``extra(rng, x,
    student_variables) -> {part: variables}``'s helpers, all in group ``'student'``, ``steps`` updates long."""
    def init(rng, batch):
        if extra is None:
            k_init, k_state = jax.random.split(rng)
        else:
            k_init, k_extra, k_state = jax.random.split(rng, 3)
        x = sample(batch)
        variables = {"student": net.init(k_init, x)}
        if extra is not None:
            variables.update(extra(k_extra, x, variables["student"]))
        return State.create(k_state, variables, {"student": (tuple(variables), make_optimizer(optim, steps))})

    return init


def loss_step(prepare: Callable, loss: Callable, group: str = "student") -> Callable:
    """The step minimising ``loss(params, batch_stats, teacher_vars, x, batch, rng, step) -> (loss, (new
    batch stats, metrics))`` over ``group`` on real batches, ``x`` the prepared (augmented) images."""
    def step(state: State, teacher_vars, batch):
        state, rng = state.next_rng()
        k_aug, k_loss = jax.random.split(rng)
        x = prepare(k_aug, batch["image"])
        state, value, metrics = minimize(
            state, group, lambda p: loss(p, state.batch_stats, teacher_vars, x, batch, k_loss, state.step))
        return state.advance(), {"loss": value, **metrics}

    return step


def predictor(net: Net, prepare: Callable, part: str = "student") -> Callable:
    """``predict(state, images)``: the student's logits on raw images (no augmentation)."""
    def predict(state, images):
        return net.apply(state.variables(part), prepare(None, images, augment=False), train=False)[0]

    return predict


def teacher_groups(data: Split, teachers) -> dict:
    """Student output indices of each teacher's classes (accuracy is reported per group)."""
    pos = {c: i for i, c in enumerate(data.classes)}
    return {f"teacher{k}_classes": [pos[c] for c in t.classes if c in pos] for k, t in enumerate(teachers)}


def accuracy(predict: Callable, data: Split, batch_size: int, groups: dict | None = None) -> Callable:
    """``evaluate(state, ectx)``: accuracy on the test split, overall and per group of outputs."""
    def evaluate(state, ectx):
        return classification_eval(predict, state, data.test, batch_size, ectx.mesh, groups)

    return evaluate


def exported(net: Net, variables: dict, data: Split, **info) -> Exported:
    """A student classifier as ``WORKDIR/model`` holds it."""
    return Exported(net.arch, len(data.classes), variables,
                    {"classes": data.classes, "kwargs": net.kwargs, **data.input_info(), **info})


def export_part(net: Net, data: Split, part: str = "student", **info) -> Callable:
    return lambda state: exported(net, state.variables(part), data, **info)


def learning_rate(optim, steps: int, per_step: int = 1) -> Callable:
    """The student's learning rate after ``step`` loop steps of ``per_step`` updates each."""
    schedule = make_schedule(optim, steps * per_step)
    return lambda step: float(schedule(step * per_step))


def start_from_student(method: str) -> Callable:
    """``train.init_from`` for a state that trains the student alone (a fresh optimizer state)."""
    def start_from(state: State, variables, info):
        if set(state.params) != {"student"}:
            raise ConfigError(f"{method} trains more than one network and cannot start from train.init_from; "
                              "leave it unset")
        loaded = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
        shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)  # noqa: E731
        if jax.tree.structure(loaded) != jax.tree.structure(state.variables("student")) or \
                shapes(loaded) != shapes(state.variables("student")):
            raise ConfigError(f"train.init_from holds a {info.get('arch')!r} model whose parameters do not match "
                              "this run's student; point it at a model of the same architecture, width and classes")
        loaded = jax.tree.map(jax.numpy.asarray, loaded)
        g = state.group("student")
        return State.create(state.rng, {"student": loaded}, {"student": (g.parts, g.tx)}, state.buffers)

    return start_from


def classifier(ctx, name: str, data: Split, net: Net, loss: Callable, *, uses_labels: bool, extra: Callable | None = None,
               predict: Callable | None = None, groups: dict | None = None, export: Callable | None = None,
               **details) -> Program:
    """The program of a student classifier (:func:`loss_step`, :func:`student_state`), evaluated by the
    accuracy of ``predict`` (default the student's) per ``groups`` (default per teacher)."""
    prepare = preparer(ctx.cfg, data, ctx.dtype)
    predict = predict or predictor(net, prepare)
    groups = teacher_groups(data, ctx.teachers) if groups is None else groups
    return Program(
        name=name, data=data, teachers=ctx.teachers, batches=batches(ctx.cfg, data, uses_labels), steps=ctx.steps,
        init=student_state(net, lambda batch: prepare(None, batch["image"][:1], augment=False), ctx.cfg.optim,
                           ctx.steps, extra),
        step=loss_step(prepare, loss), evaluate=accuracy(predict, data, int(ctx.cfg.data.batch_size), groups),
        export=export or export_part(net, data), learning_rate=learning_rate(ctx.cfg.optim, ctx.steps),
        uses_labels=uses_labels, start_from=start_from_student(name),
        details={"model": net.arch, "model_kwargs": net.kwargs, **details})
