"""Layer-wise knowledge amalgamation (docs/methods.md, "Layer-wise amalgamation"; AAAI 2019).

Teachers ``t_1..t_K`` classify disjoint class sets; the student classifies their union (its logits
are the concatenation, as in ``kd``). For every hooked layer ℓ (``layerwise.layers``, feature names of
the zoo models, e.g. ``['block1', 'block2', 'block3']`` for ``small_cnn``) a block of three 1×1
convolutions (``nn.Dense`` over the channel axis, which also serves vector features):

    r_ℓ = enc(concat_k F_tk^ℓ)                       enc: ΣC_t → C_s
    L_amal = Σ_ℓ MSE(fam(F_s^ℓ), sg(r_ℓ))              fam: C_s → C_s
    L_rec  = Σ_ℓ Σ_k MSE(split_k(dec(r_ℓ)), F_tk^ℓ)    dec: C_s → ΣC_t
    L_kd   = kd(s, concat_k t_k, T)                   (T = layerwise.T, default 1)
    L      = w0 L_kd + w1 L_amal + w2 L_rec           (layerwise.weights, default 1, 1, 1)

Student and blocks train together (parts ``'student'``, ``'blocks'``); teacher maps are resized to
the student's (``parts.resize_to``). ``layerwise.schedule='blockwise'`` splits the steps into
``len(layers)`` stages: in stage j ``L_amal`` covers layers 0..j, ``L_kd`` is on in the last stage only,
``L_rec`` throughout. (The IJCAI 2019 variant that runs the teachers from the student's stage output
is not implemented: the zoo models cannot start from an intermediate feature.)
"""
from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jka import losses
from jka.methods import common
from jka.methods.amalgamation import parts
from jka.methods.api import Method, need_teachers
from jka.settings import choice, number, sequence, setting

SCHEDULES = ("joint", "blockwise")


@dataclasses.dataclass(frozen=True)
class Settings:
    layers: list = setting(["block3"], parts.LAYERS, "feature names amalgamated (student's and teachers')")
    weights: tuple = setting((1.0, 1.0, 1.0), sequence(number(0), 3), "(w_kd, w_amal, w_rec)")
    T: float = setting(1.0, number(0, low_open=True), "temperature of kd(s, concat_k t_k, T)")
    schedule: str = setting("joint", choice("schedule (layerwise.schedule)", SCHEDULES),
                            "joint, or blockwise: stage by stage")


class LayerBlock(nn.Module):
    """enc (ΣC_t→C_s), fam (C_s→C_s), dec (C_s→ΣC_t): 1×1 convolutions over the channel axis."""

    c_s: int
    c_t_total: int

    @nn.compact
    def __call__(self, f_s, f_t_cat):
        r = nn.Dense(self.c_s, name="enc")(f_t_cat)
        fam = nn.Dense(self.c_s, name="fam")(f_s)
        rec = nn.Dense(self.c_t_total, name="dec")(r)
        return fam, r, rec


class LayerwiseBlocks(nn.Module):
    layers: tuple
    c_s: tuple
    c_t_total: tuple

    @nn.compact
    def __call__(self, s_maps, t_maps, train: bool = False):
        """``s_maps``: the student's map per layer; ``t_maps``: the teachers' maps per layer."""
        return [LayerBlock(cs, ct, name=f"block_{name}")(fs, jnp.concatenate(fts, axis=-1))
                for name, cs, ct, fs, fts in zip(self.layers, self.c_s, self.c_t_total, s_maps, t_maps)]


def gather(s_feats, t_feats, layers):
    """Student maps per layer and, per layer, the teachers' maps (resized to the student's)."""
    s_maps, t_maps = parts.hooked(s_feats, t_feats, layers, "layerwise.layers")
    return s_maps, [list(per_layer) for per_layer in zip(*t_maps)]


def blocks(layers, s_maps, t_maps) -> LayerwiseBlocks:
    """The blocks, sized from the maps' shapes (:func:`gather`'s)."""
    return LayerwiseBlocks(tuple(layers), tuple(s.shape[-1] for s in s_maps),
                           tuple(sum(f.shape[-1] for f in fs) for fs in t_maps))


def stage_masks(step, n_layers: int, steps: int, schedule: str):
    """(per-layer weights of L_amal, weight of L_kd) for the schedule at ``step`` of ``steps``."""
    if schedule == "joint":
        return jnp.ones((n_layers,), jnp.float32), jnp.float32(1.0)
    stage = jnp.minimum(step * n_layers // max(steps, 1), n_layers - 1)
    return (jnp.arange(n_layers) <= stage).astype(jnp.float32), (stage == n_layers - 1).astype(jnp.float32)


def layerwise_loss(s: Settings, logits, t_logits, outs, t_maps, layer_w, kd_w):
    """(``w0 kd_w L_kd + w1 Σ_ℓ layer_w[ℓ] L_amal^ℓ + w2 L_rec``, metrics) from the blocks' outputs."""
    l_amal = jnp.float32(0.0)
    l_rec = jnp.float32(0.0)
    for i, ((fam, r, rec), fts) in enumerate(zip(outs, t_maps)):
        l_amal = l_amal + layer_w[i] * losses.mse(fam, jax.lax.stop_gradient(r))
        bounds = np.cumsum([f.shape[-1] for f in fts])[:-1]
        for part, ft in zip(jnp.split(rec, bounds, axis=-1), fts):
            l_rec = l_rec + losses.mse(part, ft)
    l_kd = losses.kd(logits, t_logits, float(s.T))
    w0, w1, w2 = (float(w) for w in s.weights)
    return w0 * kd_w * l_kd + w1 * l_amal + w2 * l_rec, {"kd": l_kd, "amal": l_amal, "rec": l_rec}


def objective(s: Settings, net: common.Net, module: LayerwiseBlocks, steps: int):
    """``loss(params, batch_stats, teacher outputs, x, step)`` of the student and its blocks."""
    def loss(params, batch_stats, t_out, x, step):
        logits, s_feats, s_bs = net.forward(params, batch_stats, x, train=True)
        t_logits = jnp.concatenate([t for t, _ in t_out], axis=-1)
        s_maps, t_maps = gather(s_feats, [f for _, f in t_out], s.layers)
        outs, b_bs = parts.apply_blocks(module, params, batch_stats, (s_maps, t_maps))
        layer_w, kd_w = stage_masks(step, len(s.layers), steps, s.schedule)
        total, metrics = layerwise_loss(s, logits, t_logits, outs, t_maps, layer_w, kd_w)
        return total, ({"student": s_bs, "blocks": b_bs}, metrics)

    return loss


def build(ctx):
    s = ctx.settings
    data, net = parts.union_student(ctx, "layerwise")
    hooked = functools.partial(gather, layers=s.layers)
    module = blocks(s.layers, *parts.shapes(ctx, net, data, hooked))
    return parts.program(ctx, "layerwise", data, net, module, hooked, objective(s, net, module, ctx.steps))


METHOD = Method("layerwise", build=build, settings=Settings, check=need_teachers("layerwise"),
                summary="layer-wise amalgamation: teachers' maps compressed by 1×1 blocks, the student learns them",
                h100_mfu=0.147)
