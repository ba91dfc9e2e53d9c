"""Layer-wise knowledge amalgamation (docs/methods.md, "Layer-wise amalgamation"; AAAI 2019).

Teachers ``t_1..t_K`` classify disjoint class sets; the student classifies their union (its logits
are the concatenation, as in ``kd``). For every hooked layer ℓ (``amal.layers``, feature names of
the zoo models, e.g. ``['block1', 'block2', 'block3']`` for ``small_cnn``) a block of three 1×1
convolutions (``nn.Dense`` over the channel axis, which also serves vector features):

    r_ℓ = enc(concat_k F_tk^ℓ)                       enc: ΣC_t → C_s
    L_amal = Σ_ℓ MSE(fam(F_s^ℓ), sg(r_ℓ))              fam: C_s → C_s
    L_rec  = Σ_ℓ Σ_k MSE(split_k(dec(r_ℓ)), F_tk^ℓ)    dec: C_s → ΣC_t
    L_kd   = kd(s, concat_k t_k, T)                   (T = amal.T, default 1)
    L      = w0 L_kd + w1 L_amal + w2 L_rec           (amal.weights, default 1, 1, 1)

Student and blocks train together in one state: ``params = {'student': ..., 'blocks': ...}``.
Teacher maps whose spatial size differs from the student's are resized bilinearly to the
student's size before they are concatenated (``resize_to``).

``amal.schedule='blockwise'`` trains the student stage by stage: the steps are split into
``len(layers)`` equal stages; during stage j the amalgamation term covers only layers 0..j (the
later student stages receive no feature target yet) and ``L_kd`` is switched on only in the last
stage; ``L_rec`` trains the blocks' encoders/decoders throughout. (The IJCAI 2019 paper also routes
the student's stage output through the teachers' remaining stages; the zoo models cannot be run
from an intermediate feature, so that variant is not implemented.)
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jka import losses
from jka.algorithms.amalgamation.common import MultiPartAmalgamation
from jka.errors import ConfigError


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
    def __call__(self, s_maps, t_cats, train: bool = False):
        return [LayerBlock(cs, ct, name=f"block_{name}")(fs, ft)
                for name, cs, ct, fs, ft in zip(self.layers, self.c_s, self.c_t_total, s_maps, t_cats)]


class LayerwiseAmalgamation(MultiPartAmalgamation):
    name = "layerwise"
    amal_defaults = dict(layers=["block3"], weights=(1.0, 1.0, 1.0), T=1.0, schedule="joint")

    def __init__(self, cfg, teachers):
        super().__init__(cfg, teachers)
        self.layers = tuple(self.amal.layers)
        if not self.layers:
            raise ConfigError("layerwise needs amal.layers, the feature names to amalgamate (e.g. ['block3'])")
        self.weights = tuple(float(w) for w in self.amal.weights)
        if len(self.weights) != 3:
            raise ConfigError(f"amal.weights must be (w_kd, w_amal, w_rec); got {self.weights}")
        self.T = float(self.amal.T)
        self.schedule = self.amal.schedule
        if self.schedule not in ("joint", "blockwise"):
            raise ConfigError(f"amal.schedule must be 'joint' or 'blockwise', not {self.schedule!r}")

    def gather(self, s_feats, t_feats):
        """Student maps per layer and, per layer, the teachers' maps (resized to the student's)."""
        s_maps, t_maps = self.hooked(s_feats, t_feats, self.layers)
        return s_maps, [list(per_layer) for per_layer in zip(*t_maps)]

    def build_modules(self, s_feats, t_feats):
        s_maps, t_maps = self.gather(s_feats, t_feats)
        return LayerwiseBlocks(self.layers, tuple(s.shape[-1] for s in s_maps),
                               tuple(sum(f.shape[-1] for f in fs) for fs in t_maps))

    def module_inputs(self, s_feats, t_feats):
        s_maps, t_maps = self.gather(s_feats, t_feats)
        return s_maps, [jnp.concatenate(fs, axis=-1) for fs in t_maps]

    def stage_masks(self, step):
        """(per-layer weights of L_amal, weight of L_kd) for the schedule at ``step``."""
        n = len(self.layers)
        if self.schedule == "joint":
            return jnp.ones((n,), jnp.float32), jnp.float32(1.0)
        stage = jnp.minimum(step * n // max(self.total_steps, 1), n - 1)
        return (jnp.arange(n) <= stage).astype(jnp.float32), (stage == n - 1).astype(jnp.float32)

    def amal_loss(self, params, batch_stats, t_out, x, step):
        s, s_feats, s_bs = self.apply_student(params["student"], batch_stats["student"], x, train=True)
        t_logits = jnp.concatenate([t for t, _ in t_out], axis=-1)
        t_feats = [f for _, f in t_out]
        outs, b_bs = self.apply_modules(params, batch_stats, s_feats, t_feats)
        _, t_maps = self.gather(s_feats, t_feats)
        layer_w, kd_w = self.stage_masks(step)
        l_amal = jnp.float32(0.0)
        l_rec = jnp.float32(0.0)
        for i, ((fam, r, rec), fts) in enumerate(zip(outs, t_maps)):
            l_amal = l_amal + layer_w[i] * losses.mse(fam, jax.lax.stop_gradient(r))
            bounds = np.cumsum([f.shape[-1] for f in fts])[:-1]
            for part, ft in zip(jnp.split(rec, bounds, axis=-1), fts):
                l_rec = l_rec + losses.mse(part, ft)
        l_kd = losses.kd(s, t_logits, self.T)
        w0, w1, w2 = self.weights
        loss = w0 * kd_w * l_kd + w1 * l_amal + w2 * l_rec
        return loss, ({"student": s_bs, "blocks": b_bs}, {"kd": l_kd, "amal": l_amal, "rec": l_rec})
