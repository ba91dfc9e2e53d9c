"""The one training state of every method, and the optimizers built from config.

A :class:`State` holds the trained parts by name (``'student'``, ``'generator'``, ...) with their
parameters and BatchNorm statistics, one optimizer per *group* of parts (what one optax chain updates
together), the run's key, and ``buffers``: arrays carried from step to step that no gradient trains
(an image pool, a memory bank, an earlier phase's frozen parts).
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jka.errors import ConfigError, unknown_choice
from jka.settings import BOOL, choice, integer, number, optional, read, sequence, setting

SCHEDULES = ("constant", "cosine", "step", "warmup_cosine")
OPTIMIZERS = ("sgd", "adam", "adamw")


class Group(NamedTuple):
    """Parts updated by one optimizer."""

    parts: tuple
    tx: optax.GradientTransformation


@struct.dataclass
class State:
    """Everything a run trains and carries; ``groups`` is static (not a leaf), so the state can be
    checkpointed and donated."""

    step: jax.Array
    params: dict
    batch_stats: dict
    opt_state: dict
    rng: jax.Array
    buffers: dict
    groups: tuple = struct.field(pytree_node=False)  # ((name, Group), ...)

    @classmethod
    def create(cls, rng, variables: dict, groups: dict, buffers: dict | None = None) -> "State":
        """``variables``: part → {'params', 'batch_stats'} (flax variables); ``groups``: name →
        (parts, optax transformation)."""
        params = {k: v.get("params", {}) for k, v in variables.items()}
        batch_stats = {k: v.get("batch_stats", {}) for k, v in variables.items()}
        groups = tuple((name, Group(tuple(parts), tx)) for name, (parts, tx) in groups.items())
        opt_state = {name: g.tx.init({p: params[p] for p in g.parts}) for name, g in groups}
        return cls(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats, opt_state=opt_state,
                   rng=rng, buffers=dict(buffers or {}), groups=groups)

    def group(self, name: str) -> Group:
        for key, g in self.groups:
            if key == name:
                return g
        raise KeyError(f"the state has no optimizer group {name!r}; it has {[k for k, _ in self.groups]}")

    def variables(self, part: str) -> dict:
        """``{'params', 'batch_stats'}`` of one part."""
        return {"params": self.params[part], "batch_stats": self.batch_stats[part]}

    def next_rng(self):
        """(new state, key): every step draws fresh randomness."""
        rng, key = jax.random.split(self.rng)
        return self.replace(rng=rng), key

    def advance(self):
        return self.replace(step=self.step + 1)


@dataclasses.dataclass(frozen=True)
class Optim:
    """An optimizer and its learning-rate schedule (``cfg.optim``, a generator's ``g_optim``, ...)."""

    name: str = setting("sgd", choice("optimizer", OPTIMIZERS))
    lr: float = setting(0.05, number(0), "learning rate (0 freezes the weights; BN statistics still move)")
    momentum: float = setting(0.9, number(0, 1, high_open=True), "SGD momentum")
    nesterov: bool = setting(False, BOOL)
    weight_decay: float = setting(5e-4, number(0), "L2 added to the gradient (SGD, Adam); decoupled for AdamW")
    b1: float = setting(0.9, number(0, 1, high_open=True), "Adam β1")
    b2: float = setting(0.999, number(0, 1, high_open=True), "Adam β2")
    schedule: str = setting("cosine", choice("schedule", SCHEDULES))
    warmup_steps: int = setting(0, integer(0), "linear warm-up from 0")
    grad_clip: Optional[float] = setting(None, optional(number(0, low_open=True)), "global-norm clip (None: off)")
    decay_at: tuple = setting((0.5, 0.75), sequence(number(0, 1, True, True),
                                                    what="a list of fractions of training, each > 0 and < 1"),
                              "schedule 'step': fractions of training where the lr drops")
    decay_factor: float = setting(0.1, number(0, low_open=True), "schedule 'step': the factor at each drop")


def optim(cfg: Any) -> Optim:
    """``cfg`` (an :class:`Optim`, a ConfigDict or a dict) as an :class:`Optim`."""
    return cfg if isinstance(cfg, Optim) else read(Optim, cfg, "optim")


def make_schedule(cfg, total_steps: int):
    o = optim(cfg)
    lr, warmup = float(o.lr), int(o.warmup_steps)
    if o.schedule == "constant":
        sched = optax.constant_schedule(lr)
    elif o.schedule == "cosine":
        sched = optax.cosine_decay_schedule(lr, max(total_steps - warmup, 1))
    elif o.schedule == "step":
        sched = optax.piecewise_constant_schedule(lr, {int(f * total_steps): float(o.decay_factor) for f in o.decay_at})
    elif o.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup, 1), max(total_steps, warmup + 1))
    else:
        raise unknown_choice("schedule", o.schedule, SCHEDULES)
    if warmup:
        sched = optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), sched], [warmup])
    return sched


def make_optimizer(cfg, total_steps: int) -> optax.GradientTransformation:
    """An optax optimizer from an ``optim`` config. Weight decay for SGD and Adam is L2 added to the
    gradient (PyTorch's ``weight_decay``); for AdamW it is decoupled."""
    o = optim(cfg)
    if float(o.lr) < 0:
        raise ConfigError(f"optim.lr must be >= 0, got {o.lr}")
    sched = make_schedule(o, total_steps)
    parts = [optax.clip_by_global_norm(float(o.grad_clip))] if o.grad_clip else []
    if o.name in ("sgd", "adam") and o.weight_decay:
        parts.append(optax.add_decayed_weights(float(o.weight_decay)))
    if o.name == "sgd":
        parts.append(optax.sgd(sched, momentum=o.momentum or None, nesterov=bool(o.nesterov)))
    elif o.name == "adam":
        parts.append(optax.adam(sched, b1=o.b1, b2=o.b2))
    elif o.name == "adamw":
        parts.append(optax.adamw(sched, b1=o.b1, b2=o.b2, weight_decay=float(o.weight_decay)))
    else:
        raise unknown_choice("optimizer", o.name, OPTIMIZERS)
    return optax.chain(*parts) if len(parts) > 1 else parts[0]
