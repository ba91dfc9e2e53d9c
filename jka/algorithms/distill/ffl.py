"""Online mutual distillation with feature fusion, FFL (docs/methods.md, "FFL").

K ≥ 2 sub-networks train together from scratch with labels: either independent zoo models
(``ffl.branches``, or K copies of ``cfg.model``), or one model with a shared trunk and K private
branches (``ffl.shared_trunk=True``, e.g. ``cifar_resnet32`` with ``num_branches=K``). A fusion
module concatenates their last feature maps → depthwise 3×3 conv → BN → ReLU → 1×1 conv → BN →
ReLU → global pool → fused classifier. With logits ``l_i`` of the sub-networks and ``l_f`` of the
fused classifier, the loss of a batch is

    Σ_i CE(l_i, y) + CE(l_f, y) + w(e) · [Σ_i kd(l_i ← sg l_f) + kd(l_f ← sg mean_i l_i)],

``kd`` at temperature ``T`` (3), ``w(e) = exp(−5 (1 − min(e, R)/R)²)`` for epoch ``e`` (integer,
from the step) with ramp length ``R = ffl.ramp_epochs``. The fusion module has its own optimizer
settings (``ffl.fusion_optim`` overrides ``optim``), through ``optax.multi_transform``.

Evaluation reports the fused classifier as ``accuracy``, each sub-network as ``sub{i}_accuracy``
and the mean of the sub-networks' logits as ``ensemble_accuracy``. The exported model is
sub-network 0 as a plain zoo model (for a shared trunk: trunk + branch 0).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jka import losses, models
from jka.algorithms.base import Algorithm
from jka.config import derive, section
from jka.errors import ConfigError
from jka.models.layers import BatchNorm
from jka.train.evaluate import predict_all
from jka.train.state import TrainState, make_optimizer


PAD1 = ((1, 1), (1, 1))
FUSION = "fusion"
# ``cfg.ffl``: K sub-networks (copies of cfg.model, ``branches`` of zoo models, or a shared trunk
# with ``num_branches``), T, the ramp in epochs, the fused width and the fusion module's optimizer.
FFL_DEFAULTS = dict(num_branches=2, branches=None, shared_trunk=False, feature_key="auto", T=3.0, ramp_epochs=80,
                    fusion_channels=None, fusion_optim=dict(weight_decay=1e-5))


def ramp_weight(epoch, ramp_epochs: float):
    """``w(e) = exp(−5 (1 − min(e, R)/R)²)``; 1 from the start when ``R = 0``."""
    if ramp_epochs <= 0:
        return jnp.ones((), jnp.float32)
    frac = jnp.minimum(jnp.asarray(epoch, jnp.float32), ramp_epochs) / ramp_epochs
    return jnp.exp(-5.0 * jnp.square(1.0 - frac))


def ffl_loss(sub_logits, fused_logits, labels, w, T: float = 3.0):
    """The FFL batch loss (module docstring) and its parts."""
    ce_sub = sum(losses.cross_entropy(l, labels) for l in sub_logits)
    ce_fused = losses.cross_entropy(fused_logits, labels)
    fused_t = jax.lax.stop_gradient(fused_logits)
    mean_t = jax.lax.stop_gradient(jnp.mean(jnp.stack(sub_logits), axis=0))
    kd_sub = sum(losses.kd(l, fused_t, T) for l in sub_logits)
    kd_fused = losses.kd(fused_logits, mean_t, T)
    total = ce_sub + ce_fused + w * (kd_sub + kd_fused)
    return total, {"ce_sub": ce_sub, "ce_fused": ce_fused, "kd_sub": kd_sub, "kd_fused": kd_fused, "w": w}


class FusionModule(nn.Module):
    """concat → depthwise 3×3 → BN → ReLU → 1×1 → BN → ReLU → global pool → linear."""

    num_classes: int
    channels: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, maps, train: bool = False):
        x = jnp.concatenate(maps, axis=-1)
        c = x.shape[-1]
        x = nn.Conv(c, (3, 3), padding=PAD1, feature_group_count=c, use_bias=False, dtype=self.dtype,
                    name="dwconv")(x)
        x = nn.relu(BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn1")(x))
        x = nn.Conv(self.channels, (1, 1), use_bias=False, dtype=self.dtype, name="pwconv")(x)
        x = nn.relu(BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn2")(x))
        pooled = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(pooled).astype(jnp.float32)


def last_feature_map(feats: dict, key=None):
    """``feats[key]``, or (``key`` None / 'auto') the last 4-D entry in the model's order."""
    if key not in (None, "auto"):
        if key not in feats:
            raise ConfigError(f"ffl.feature_key {key!r} is not a feature of the sub-network; "
                              f"choose one of {sorted(feats)}")
        return feats[key]
    maps = [v for v in feats.values() if getattr(v, "ndim", 0) == 4]
    if not maps:
        raise ConfigError("the sub-network returns no feature map (4-D feature); FFL fuses feature maps")
    return maps[-1]


class FFL(Algorithm):
    name = "ffl"
    uses_labels = True

    def __init__(self, cfg, teachers):
        if teachers:
            raise ConfigError("ffl trains its sub-networks from scratch with labels; remove the teachers")
        f = section(cfg, "ffl", FFL_DEFAULTS, "ffl")
        self.T, self.ramp, self.feature_key = float(f.T), float(f.ramp_epochs), f.feature_key
        self.shared_trunk, self.num_branches = bool(f.shared_trunk), int(f.num_branches)
        super().__init__(cfg, teachers)
        n_cls = len(self.student_classes)
        branches = f.branches
        if self.shared_trunk:
            if branches:
                raise ConfigError("ffl.shared_trunk uses model.name with num_branches; leave ffl.branches empty")
            kw = dict(self.student_kwargs, num_branches=self.num_branches)
            self.specs = [(cfg.model.name, kw)]
            self.subnets = [("net", models.create(cfg.model.name, n_cls, dtype=self.dtype, **kw), True)]
        else:
            specs = ([(b["name"], dict(b.get("kwargs", {}))) for b in branches] if branches
                     else [(cfg.model.name, dict(self.student_kwargs))] * self.num_branches)
            self.specs = specs
            self.subnets = [(f"subnet{i}", models.create(n, n_cls, dtype=self.dtype, **kw), False)
                            for i, (n, kw) in enumerate(specs)]
        self.num_subs = self.num_branches if self.shared_trunk else len(self.subnets)
        if self.num_subs < 2:
            raise ConfigError(f"ffl needs at least two sub-networks, got {self.num_subs}")
        self.fusion_channels = f.fusion_channels
        self.fusion_optim = dict(f.fusion_optim)
        self.steps_per_epoch = max(1, len(self.train_ds) // int(cfg.data.batch_size))

    # -- forward -------------------------------------------------------------------------------------
    def sub_outputs(self, params, batch_stats, x, train: bool):
        """(list of sub-network logits, list of their last feature maps, new batch stats)."""
        logits, maps, new_bs = [], [], {}
        for key, module, multi in self.subnets:
            v = {"params": params[key], "batch_stats": batch_stats.get(key, {})}
            if train:
                out, upd = module.apply(v, x, train=True, mutable=["batch_stats"])
                new_bs[key] = upd.get("batch_stats", {})
            else:
                out = module.apply(v, x, train=False)
                new_bs[key] = batch_stats.get(key, {})
            ls, fs = out if multi else ([out[0]], [out[1]])
            logits += list(ls)
            maps += [last_feature_map(fe, self.feature_key) for fe in fs]
        shapes = {m.shape[1:3] for m in maps}
        if len(shapes) > 1:
            raise ConfigError(f"ffl fuses feature maps of one spatial size; the sub-networks give {sorted(shapes)}: "
                              "choose ffl.feature_key or sub-networks with matching strides")
        return logits, maps, new_bs

    def forward(self, params, batch_stats, x, train: bool):
        """(sub logits, fused logits, new batch stats)."""
        logits, maps, new_bs = self.sub_outputs(params, batch_stats, x, train)
        v = {"params": params[FUSION], "batch_stats": batch_stats.get(FUSION, {})}
        if train:
            fused, upd = self.fusion.apply(v, maps, train=True, mutable=["batch_stats"])
            new_bs[FUSION] = upd["batch_stats"]
        else:
            fused = self.fusion.apply(v, maps, train=False)
            new_bs[FUSION] = batch_stats.get(FUSION, {})
        return logits, fused, new_bs

    # -- state ---------------------------------------------------------------------------------------
    def init(self, rng, batch):
        k_init, k_state = jax.random.split(rng)
        x = self.prepare(k_init, batch["image"][:1], augment=False)
        keys = jax.random.split(k_init, len(self.subnets) + 1)
        params, batch_stats = {}, {}
        for k, (key, module, _) in zip(keys, self.subnets):
            v = module.init(k, x, train=False)
            params[key], batch_stats[key] = v["params"], v.get("batch_stats", {})
        _, maps, _ = self.sub_outputs(params, batch_stats, x, False)
        channels = self.fusion_channels or sum(m.shape[-1] for m in maps) // len(maps)
        self.fusion = FusionModule(len(self.student_classes), int(channels), dtype=self.dtype)
        v = self.fusion.init(keys[-1], maps, train=False)
        params[FUSION], batch_stats[FUSION] = v["params"], v["batch_stats"]
        fusion_optim = derive(self.cfg.optim)
        fusion_optim.update(self.fusion_optim)
        labels = {k: jax.tree.map(lambda _, k=k: FUSION if k == FUSION else "subnets", p) for k, p in params.items()}
        tx = optax.multi_transform({"subnets": make_optimizer(self.cfg.optim, self.total_steps),
                                    FUSION: make_optimizer(fusion_optim, self.total_steps)}, labels)
        return TrainState.create(params, tx, k_state, batch_stats)

    def train_step(self, state, teacher_vars, batch):
        state, rng = state.next_rng()
        x = self.prepare(rng, batch["image"])
        w = ramp_weight(state.step // self.steps_per_epoch, self.ramp)

        def loss_fn(params):
            subs, fused, new_bs = self.forward(params, state.batch_stats, x, True)
            loss, parts = ffl_loss(subs, fused, batch["label"], w, self.T)
            return loss, (new_bs, parts)

        (loss, (new_bs, parts)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = state.apply_gradients(grads, batch_stats=new_bs)
        return state, {"loss": loss, **parts}

    # -- evaluation / export --------------------------------------------------------------------------
    def predict(self, state, images):
        """The fused classifier's logits."""
        x = self.prepare(None, images, augment=False)
        return self.forward(state.params, state.batch_stats, x, False)[1]

    def _all_predictions(self, state, images):
        x = self.prepare(None, images, augment=False)
        subs, fused, _ = self.forward(state.params, state.batch_stats, x, False)
        heads = [fused] + list(subs) + [jnp.mean(jnp.stack(subs), axis=0)]
        return jnp.stack([jnp.argmax(h, -1) for h in heads], axis=-1)

    def evaluate(self, state, mesh) -> dict:
        pred = predict_all(self._all_predictions, state, self.test_ds, int(self.cfg.data.batch_size), mesh)
        correct = pred == self.test_ds.labels[:, None]
        out = {"accuracy": float(np.mean(correct[:, 0]))}
        for i in range(self.num_subs):
            out[f"sub{i}_accuracy"] = float(np.mean(correct[:, 1 + i]))
        out["ensemble_accuracy"] = float(np.mean(correct[:, -1]))
        return out

    def export(self, state):
        """Sub-network 0 as a plain zoo model."""
        if not self.shared_trunk:
            name, kw = self.specs[0]
            return self.export_student({"params": state.params["subnet0"], "batch_stats": state.batch_stats["subnet0"]},
                                       arch=name, kwargs=kw)

        def branch0(tree):
            out = {}
            for k, v in tree.items():
                if k.startswith("branch0_"):
                    out[k[len("branch0_"):]] = v
                elif not k.startswith("branch"):
                    out[k] = v
            return out

        name, kw = self.specs[0]
        kw = {k: v for k, v in kw.items() if k not in ("num_branches", "shared_stages")}
        variables = {"params": branch0(state.params["net"]), "batch_stats": branch0(state.batch_stats["net"])}
        return self.export_student(variables, arch=name, kwargs=kw)
