"""Online mutual distillation with feature fusion, FFL (docs/methods.md, "FFL").

K ≥ 2 sub-networks train together from scratch with labels: independent zoo models (``ffl.branches``,
or K copies of ``cfg.model``), or one model with a shared trunk and K branches (``ffl.shared_trunk``).
A :class:`FusionModule` fuses their last feature maps into a classifier. With logits ``l_i`` of the
sub-networks and ``l_f`` of the fused classifier, the loss of a batch is

    Σ_i CE(l_i, y) + CE(l_f, y) + w(e) · [Σ_i kd(l_i ← sg l_f) + kd(l_f ← sg mean_i l_i)],

``kd`` at temperature ``T``, ``w(e) = exp(−5 (1 − min(e, R)/R)²)`` for the integer epoch ``e``,
``R = ffl.ramp_epochs``. The sub-networks (``optim``) and the fusion module (``optim`` changed by
``ffl.fusion_optim``) are two optimizer groups updated from one backward pass. Eval: the fused classifier
(``accuracy``), each sub-network (``sub{i}_accuracy``), their mean logits (``ensemble_accuracy``); the
export is sub-network 0 as a plain zoo model (a shared trunk's: trunk + branch 0).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jka import losses, models
from jka.errors import ConfigError
from jka.methods import common
from jka.methods.api import Method, all_checks, no_teachers
from jka.models.layers import BatchNorm
from jka.settings import BOOL, TEXT, Rule, integer, is_dict, number, optional, read, setting
from jka.train.evaluate import predict_all
from jka.train.program import Program
from jka.train.state import Optim, State, make_optimizer
from jka.train.update import minimize

PAD1 = ((1, 1), (1, 1))
FUSION = "fusion"
OPTIM_KEYS = tuple(f.name for f in dataclasses.fields(Optim))
BRANCHES = Rule(lambda v: v is None or (isinstance(v, (list, tuple)) and all(
    is_dict(b) and b.get("name") in models.available() and set(b) <= {"name", "kwargs"} for b in v)),
    "None or a list of dicts with a zoo model 'name' (and 'kwargs')")
OPTIM_CHANGES = Rule(lambda v: is_dict(v) and set(v) <= set(OPTIM_KEYS),
                     f"a dict of optim keys ({', '.join(OPTIM_KEYS)})")


@dataclasses.dataclass(frozen=True)
class Settings:
    num_branches: int = setting(2, integer(1), "K: copies of model, or the shared trunk's branches")
    branches: Optional[list] = setting(None, BRANCHES, "independent zoo models [{name, kwargs}] (None: K copies)")
    shared_trunk: bool = setting(False, BOOL, "one model.name with a shared trunk and num_branches branches")
    feature_key: str = setting("auto", TEXT, "the feature map fused ('auto': the last 4-D feature)")
    T: float = setting(3.0, number(0, low_open=True), "temperature of the kd terms")
    ramp_epochs: float = setting(80, number(0), "R: epochs over which w(e) ramps to 1 (0: 1 from the start)")
    fusion_channels: Optional[int] = setting(None, optional(integer(1)), "the fused width (None: the mean input width)")
    fusion_optim: dict = setting({"weight_decay": 1e-5}, OPTIM_CHANGES, "optim keys the fusion module changes")


def fusion_optim(cfg, s: Settings) -> Optim:
    """``optim`` with the keys of ``ffl.fusion_optim`` replaced, checked as an optimizer."""
    return read(Optim, {**dict(cfg.optim), **dict(s.fusion_optim)}, "ffl.fusion_optim")


def sub_count(s: Settings) -> int:
    return s.num_branches if s.shared_trunk or not s.branches else len(s.branches)


def check_subnets(cfg, s: Settings) -> None:
    if s.shared_trunk and s.branches:
        raise ConfigError("ffl.shared_trunk uses model.name with num_branches; leave ffl.branches empty")
    if sub_count(s) < 2:
        raise ConfigError(f"ffl needs at least two sub-networks, got {sub_count(s)} (ffl.num_branches or ffl.branches)")
    fusion_optim(cfg, s)


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


def subnets(ctx, s: Settings, num_classes: int) -> list:
    """(part, :class:`~jka.methods.common.Net`, whether it gives every branch) of each network trained."""
    kwargs = dict(ctx.cfg.model.get("kwargs", {}))
    if s.shared_trunk:
        return [("net", common.Net.create(ctx.cfg.model.name, num_classes, ctx.dtype, **kwargs,
                                          num_branches=s.num_branches), True)]
    specs = ([(b["name"], dict(b.get("kwargs", {}))) for b in s.branches] if s.branches
             else [(ctx.cfg.model.name, kwargs)] * s.num_branches)
    return [(f"subnet{i}", common.Net.create(name, num_classes, ctx.dtype, **kw), False)
            for i, (name, kw) in enumerate(specs)]


def branch0(tree: dict) -> dict:
    """A shared-trunk model's trunk and branch 0, named as the single-branch model names them."""
    return {k.removeprefix("branch0_"): v for k, v in tree.items()
            if k.startswith("branch0_") or not k.startswith("branch")}


def build(ctx) -> Program:
    s, cfg = ctx.settings, ctx.cfg
    data = common.split(cfg)
    nets = subnets(ctx, s, len(data.classes))
    prepare = common.preparer(cfg, data, ctx.dtype)
    steps_per_epoch = max(1, len(data.train) // int(cfg.data.batch_size))

    def sub_outputs(params, batch_stats, x, train: bool):
        """(sub-network logits, their last feature maps, new batch stats)."""
        logits, maps, new_bs = [], [], {}
        for part, net, multi in nets:
            out, feats, new_bs[part] = net.apply({"params": params[part], "batch_stats": batch_stats.get(part, {})},
                                                 x, train)
            ls, fs = (out, feats) if multi else ([out], [feats])
            logits += list(ls)
            maps += [last_feature_map(fe, s.feature_key) for fe in fs]
        shapes = {m.shape[1:3] for m in maps}
        if len(shapes) > 1:
            raise ConfigError(f"ffl fuses feature maps of one spatial size; the sub-networks give {sorted(shapes)}: "
                              "choose ffl.feature_key or sub-networks with matching strides")
        return logits, maps, new_bs

    def init_subnets(rng, x):
        """(the keys of the sub-networks and the fusion module, the sub-networks' variables)."""
        keys = jax.random.split(rng, len(nets) + 1)
        return keys, {part: net.init(k, x) for k, (part, net, _) in zip(keys, nets)}

    def maps_of(variables, x):
        params = {p: v["params"] for p, v in variables.items()}
        return sub_outputs(params, {p: v.get("batch_stats", {}) for p, v in variables.items()}, x, False)[1]

    x1 = jax.ShapeDtypeStruct((1,) + data.image_shape, ctx.dtype)
    shapes = jax.eval_shape(lambda x: maps_of(init_subnets(jax.random.PRNGKey(0), x)[1], x), x1)
    fusion = FusionModule(len(data.classes), int(s.fusion_channels or sum(m.shape[-1] for m in shapes) // len(shapes)),
                          dtype=ctx.dtype)

    def forward(params, batch_stats, x, train: bool):
        """(sub logits, fused logits, new batch stats)."""
        logits, maps, new_bs = sub_outputs(params, batch_stats, x, train)
        v = {"params": params[FUSION], "batch_stats": batch_stats.get(FUSION, {})}
        fused, upd = fusion.apply(v, maps, train=train, mutable=["batch_stats"] if train else [])
        new_bs[FUSION] = upd.get("batch_stats", v["batch_stats"])
        return logits, fused, new_bs

    def init(rng, batch):
        k_init, k_state = jax.random.split(rng)
        x = prepare(k_init, batch["image"][:1], augment=False)
        keys, variables = init_subnets(k_init, x)
        variables[FUSION] = fusion.init(keys[-1], maps_of(variables, x), train=False)
        return State.create(k_state, variables, {
            "subnets": (tuple(p for p, _, _ in nets), make_optimizer(cfg.optim, ctx.steps)),
            FUSION: ((FUSION,), make_optimizer(fusion_optim(cfg, s), ctx.steps))})

    def step(state, teacher_vars, batch):
        state, rng = state.next_rng()
        x = prepare(rng, batch["image"])
        w = ramp_weight(state.step // steps_per_epoch, float(s.ramp_epochs))

        def loss(params):
            subs, fused, new_bs = forward(params, state.batch_stats, x, True)
            value, terms = ffl_loss(subs, fused, batch["label"], w, float(s.T))
            return value, (new_bs, terms)

        state, value, terms = minimize(state, ("subnets", FUSION), loss)
        return state.advance(), {"loss": value, **terms}

    def heads(state, images):
        subs, fused, _ = forward(state.params, state.batch_stats, prepare(None, images, augment=False), False)
        return jnp.stack([jnp.argmax(h, -1) for h in [fused] + list(subs) + [jnp.mean(jnp.stack(subs), axis=0)]],
                         axis=-1)

    def evaluate(state, ectx) -> dict:
        correct = predict_all(heads, state, data.test, int(cfg.data.batch_size), ectx.mesh) == data.test.labels[:, None]
        return {"accuracy": float(np.mean(correct[:, 0])),
                **{f"sub{i}_accuracy": float(np.mean(correct[:, 1 + i])) for i in range(sub_count(s))},
                "ensemble_accuracy": float(np.mean(correct[:, -1]))}

    def export(state):
        """Sub-network 0 as a plain zoo model."""
        part, net, multi = nets[0]
        variables = state.variables(part)
        if multi:
            variables = {k: branch0(v) for k, v in variables.items()}
            net = common.Net(net.arch, {k: v for k, v in net.kwargs.items()
                                        if k not in ("num_branches", "shared_stages")}, None)
        return common.exported(net, variables, data)

    return Program(name="ffl", data=data, teachers=ctx.teachers, batches=common.batches(cfg, data, True),
                   steps=ctx.steps, init=init, step=step, evaluate=evaluate, export=export,
                   learning_rate=common.learning_rate(cfg.optim, ctx.steps), uses_labels=True,
                   details={"model": cfg.model.name, "model_kwargs": dict(cfg.model.get("kwargs", {}))})


METHOD = Method("ffl", build=build, settings=Settings,
                check=all_checks(no_teachers("ffl", "trains its sub-networks from scratch with labels"), check_subnets),
                summary="online mutual distillation of K sub-networks through a fusion module (no teacher)")
