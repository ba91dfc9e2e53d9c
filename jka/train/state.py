"""Train state (a pytree) and optimizers built from config."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jka.errors import ConfigError, unknown_choice


@struct.dataclass
class TrainState:
    """Everything one trainable part (student, adapters, generator, ...) needs to train.

    ``params`` and ``batch_stats`` may be dicts of several modules trained together by one
    optimizer. ``tx`` is static (not a leaf), so the state can be checkpointed and donated.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, params, tx, rng, batch_stats=None):
        return cls(step=jnp.zeros((), jnp.int32), params=params,
                   batch_stats=batch_stats if batch_stats is not None else {},
                   opt_state=tx.init(params), rng=rng, tx=tx)

    def apply_gradients(self, grads, batch_stats=None):
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(
            step=self.step + 1,
            params=optax.apply_updates(self.params, updates),
            batch_stats=self.batch_stats if batch_stats is None else batch_stats,
            opt_state=opt_state,
        )

    def next_rng(self):
        """(new_state, key): split the state's key so every step draws fresh randomness."""
        rng, key = jax.random.split(self.rng)
        return self.replace(rng=rng), key

    @property
    def variables(self):
        return {"params": self.params, "batch_stats": self.batch_stats}


SCHEDULES = ("constant", "cosine", "step", "warmup_cosine")
OPTIMIZERS = ("sgd", "adam", "adamw")


def make_schedule(cfg, total_steps: int):
    lr = float(cfg.lr)
    name = cfg.get("schedule", "constant")
    warmup = int(cfg.get("warmup_steps", 0))
    if name == "constant":
        sched = optax.constant_schedule(lr)
    elif name == "cosine":
        sched = optax.cosine_decay_schedule(lr, max(total_steps - warmup, 1))
    elif name == "step":
        # Multiply by `decay_factor` at each fraction of training in `decay_at` (e.g. [0.5, 0.75]).
        bounds = {int(f * total_steps): float(cfg.get("decay_factor", 0.1)) for f in cfg.get("decay_at", (0.5, 0.75))}
        sched = optax.piecewise_constant_schedule(lr, bounds)
    elif name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup, 1), max(total_steps, warmup + 1))
    else:
        raise unknown_choice("schedule", name, SCHEDULES)
    if warmup and name != "warmup_cosine":
        sched = optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), sched], [warmup])
    return sched


def make_optimizer(cfg, total_steps: int) -> optax.GradientTransformation:
    """An optax optimizer from an ``optim`` config: name, lr, schedule, momentum, weight_decay.

    Weight decay for SGD is L2 added to the gradient (PyTorch's ``weight_decay``); for AdamW it is
    decoupled. ``grad_clip`` (global norm) is optional.
    """
    name = cfg.get("name", "sgd")
    sched = make_schedule(cfg, total_steps)
    wd = float(cfg.get("weight_decay", 0.0))
    parts = []
    if cfg.get("grad_clip", None):
        parts.append(optax.clip_by_global_norm(float(cfg.grad_clip)))
    if name == "sgd":
        if wd:
            parts.append(optax.add_decayed_weights(wd))
        momentum = cfg.get("momentum", 0.9)
        parts.append(optax.sgd(sched, momentum=momentum or None, nesterov=bool(cfg.get("nesterov", False))))
    elif name == "adam":
        if wd:
            parts.append(optax.add_decayed_weights(wd))
        parts.append(optax.adam(sched, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999)))
    elif name == "adamw":
        parts.append(optax.adamw(sched, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999), weight_decay=wd))
    else:
        raise unknown_choice("optimizer", name, OPTIMIZERS)
    if float(cfg.lr) < 0:
        raise ConfigError(f"optim.lr must be >= 0, got {cfg.lr}")
    return optax.chain(*parts) if len(parts) > 1 else parts[0]
