"""Layer-wise knowledge amalgamation (SPEC §3.1, AAAI 2019 "comprehensive classification").

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
student's size before they are concatenated (``match_spatial``).

``amal.schedule='blockwise'`` trains the student stage by stage: the steps are split into
``len(layers)`` equal stages; during stage j the amalgamation term covers only layers 0..j (the
later student stages receive no feature target yet) and ``L_kd`` is switched on only in the last
stage; ``L_rec`` trains the blocks' encoders/decoders throughout. (The IJCAI 2019 paper also routes
the student's stage output through the teachers' remaining stages; the zoo models cannot be run
from an intermediate feature, so that variant is not implemented.)

``MultiPartAmalgamation`` is the shared machinery for amalgamation algorithms whose trainable
state is the student plus extra modules (also used by CFL): union-of-teachers student, no
labels, state dict, student-only prediction/export, and the optional multi-dataset union data
(``data.sources``: several datasets whose label spaces are stacked, e.g. Cars + Aircraft).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jka import losses
from jka.algorithms.kd import KD
from jka.data import ArrayDataset, select_classes
from jka.data.records import resize_uint8
from jka.data.sources import IMAGENET_STATS, load_split
from jka.errors import ConfigError, UserError
from jka.train.state import TrainState, make_optimizer

# ------------------------------------------------------------------------------------------------
# Data: one dataset, or several stacked (their label spaces concatenated in order).


def _folder_split(folder: str, split: str, image_size: int) -> ArrayDataset:
    """An image-folder dataset ``folder/<split>/<class name>/*.{jpg,png}`` (classes sorted by name)."""
    import os

    from PIL import Image

    root = os.path.join(folder, split)
    if not os.path.isdir(root):
        raise UserError(f"image folder {root!r} does not exist; lay the data out as "
                        f"{folder}/{{train,test}}/<class>/<image>.jpg (see the config's docstring)")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    images, labels = [], []
    for c, name in enumerate(classes):
        for fname in sorted(os.listdir(os.path.join(root, name))):
            if fname.lower().endswith((".jpg", ".jpeg", ".png")):
                with Image.open(os.path.join(root, name, fname)) as im:
                    im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                    images.append(np.asarray(im, np.uint8))
                labels.append(c)
    if not images:
        raise UserError(f"image folder {root!r} has no .jpg/.png images in class sub-folders")
    mean, std = IMAGENET_STATS
    return ArrayDataset(np.stack(images), np.asarray(labels, np.int64), len(classes), mean, std)


def _tfds_resized_split(name: str, split: str, data_dir, image_size: int) -> ArrayDataset:
    """A tfds classification split whose images may differ in size (e.g. cars196), each resized."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
        src = tfds.data_source(name, split=split, data_dir=data_dir)
    except Exception as err:  # tfds raises several types for "not prepared"
        raise UserError(f"tfds dataset {name!r} split {split!r} is not prepared ({type(err).__name__}); "
                        f"run `tfds build {name} --data_dir DIR` once with internet and set data_dir=DIR") from None
    images = np.empty((len(src), image_size, image_size, 3), np.uint8)
    labels = np.empty((len(src),), np.int64)
    for i in range(len(src)):
        ex = src[i]
        img = np.asarray(ex["image"])
        if img.shape[-1] == 1:
            img = np.repeat(img, 3, axis=-1)
        images[i] = resize_uint8(img[None], image_size)[0]
        labels[i] = ex["label"]
    mean, std = IMAGENET_STATS
    return ArrayDataset(images, labels, builder.info.features["label"].num_classes, mean, std)


def load_source(src, split: str, image_size: int) -> ArrayDataset:
    """One entry of ``data.sources``: ``dict(name=<tfds name>, data_dir=...)`` or ``dict(folder=DIR)``."""
    split_name = src.get(f"{split}_split", split)
    if src.get("folder", None):
        return _folder_split(src["folder"], split_name, image_size)
    if not src.get("name", None):
        raise ConfigError("each data.sources[i] needs 'name' (a tfds dataset) or 'folder' (an image folder)")
    return _tfds_resized_split(src["name"], split_name, src.get("data_dir", None), image_size)


def stack_datasets(parts: Sequence[ArrayDataset]) -> ArrayDataset:
    """Concatenate datasets; dataset i's labels are offset by the class counts of datasets < i."""
    offsets = np.cumsum([0] + [p.num_classes for p in parts])
    return ArrayDataset(np.concatenate([p.images for p in parts]),
                        np.concatenate([p.labels + o for p, o in zip(parts, offsets)]),
                        int(offsets[-1]), parts[0].mean, parts[0].std)


def load_union_split(data_cfg, split: str) -> ArrayDataset:
    sources = data_cfg.get("sources", None)
    if not sources:
        return load_split(data_cfg, split)
    size = data_cfg.get("image_size", None)
    if not size:
        raise ConfigError("data.sources needs data.image_size (every source is resized to it)")
    return stack_datasets([load_source(s, split, int(size)) for s in sources])


def match_spatial(f, like):
    """Resize map ``f`` (B, H, W, C) bilinearly to the spatial size of ``like``; vectors pass through."""
    if f.ndim != 4 or f.shape[1:3] == like.shape[1:3]:
        return f
    return jax.image.resize(f, (f.shape[0], like.shape[1], like.shape[2], f.shape[3]), "linear")


# ------------------------------------------------------------------------------------------------


class MultiPartAmalgamation(KD):
    """Student + extra trainable modules, learning from frozen teachers over disjoint classes.

    Abstract (``name = 'base'`` keeps it out of the registry). Subclasses implement
    ``build_modules(s_feats, t_feats) -> nn.Module`` and
    ``amal_loss(params, batch_stats, t_out, x, step) -> (loss, (batch_stats, metrics))``.
    """

    name = "base"

    def __init__(self, cfg, teachers):
        if "amal" not in cfg:
            raise ConfigError(f"algorithm {self.name!r} needs an 'amal' section (see configs/amalgamation/)")
        super().__init__(cfg, teachers)
        self.uses_labels = False
        self.amal = cfg.amal
        self.T = float(self.amal.get("T", 1.0))

    def load_data(self):
        full = load_union_split(self.cfg.data, "train")
        self.student_classes = list(self.default_student_classes(self.cfg, full.num_classes))
        self.train_ds = select_classes(full, self.student_classes)
        self.test_ds = select_classes(load_union_split(self.cfg.data, "test"), self.student_classes)
        self.mean, self.std = full.mean, full.std

    def teacher_outputs(self, teacher_vars, x):
        return [t(v, x) for t, v in zip(self.teachers, teacher_vars)]

    def feature(self, feats: dict, name: str, who: str):
        if name not in feats:
            raise ConfigError(f"{who} has no feature {name!r}; its features are {sorted(feats)}; fix amal.layers")
        return feats[name]

    def build_modules(self, s_feats, t_feats) -> nn.Module:
        raise NotImplementedError

    def module_inputs(self, s_feats, t_feats):
        raise NotImplementedError

    def init(self, rng, batch):
        k_s, k_b, k_state = jax.random.split(rng, 3)
        x = self.prepare(k_s, batch["image"][:2], augment=False)
        sv = self.student.init(k_s, x, train=False)
        _, s_feats = self.student.apply(sv, x, train=False)
        t_feats = [f for _, f in self.teacher_outputs([t.variables for t in self.teachers], x)]
        self.modules = self.build_modules(s_feats, t_feats)
        mv = self.modules.init(k_b, *self.module_inputs(s_feats, t_feats), train=False)
        params = {"student": sv["params"], "blocks": mv["params"]}
        batch_stats = {"student": sv.get("batch_stats", {}), "blocks": mv.get("batch_stats", {})}
        return TrainState.create(params, make_optimizer(self.cfg.optim, self.total_steps), k_state, batch_stats)

    def apply_modules(self, params, batch_stats, s_feats, t_feats, train: bool = True):
        variables = {"params": params["blocks"], "batch_stats": batch_stats["blocks"]}
        if train and batch_stats["blocks"]:
            out, upd = self.modules.apply(variables, *self.module_inputs(s_feats, t_feats), train=True,
                                          mutable=["batch_stats"])
            return out, upd["batch_stats"]
        return self.modules.apply(variables, *self.module_inputs(s_feats, t_feats), train=train), batch_stats["blocks"]

    def amal_loss(self, params, batch_stats, t_out, x, step):
        raise NotImplementedError

    def train_step(self, state, teacher_vars, batch):
        state, rng = state.next_rng()
        x = self.prepare(rng, batch["image"])
        t_out = self.teacher_outputs(teacher_vars, x)
        grad_fn = jax.value_and_grad(self.amal_loss, has_aux=True)
        (loss, (new_bs, metrics)), grads = grad_fn(state.params, state.batch_stats, t_out, x, state.step)
        state = state.apply_gradients(grads, batch_stats=new_bs)
        return state, {"loss": loss, **metrics}


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

    def __init__(self, cfg, teachers):
        super().__init__(cfg, teachers)
        self.layers = tuple(self.amal.get("layers", ()))
        if not self.layers:
            raise ConfigError("layerwise needs amal.layers, the feature names to amalgamate (e.g. ['block3'])")
        self.weights = tuple(float(w) for w in self.amal.get("weights", (1.0, 1.0, 1.0)))
        if len(self.weights) != 3:
            raise ConfigError(f"amal.weights must be (w_kd, w_amal, w_rec); got {self.weights}")
        self.schedule = self.amal.get("schedule", "joint")
        if self.schedule not in ("joint", "blockwise"):
            raise ConfigError(f"amal.schedule must be 'joint' or 'blockwise', not {self.schedule!r}")

    def gather(self, s_feats, t_feats):
        """Student maps per layer and the teachers' maps (resized to the student's) per layer."""
        s_maps = [self.feature(s_feats, n, "the student") for n in self.layers]
        t_maps = [[match_spatial(self.feature(f, n, f"teacher {k}"), s) for k, f in enumerate(t_feats)]
                  for n, s in zip(self.layers, s_maps)]
        return s_maps, t_maps

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


__all__ = ["LayerwiseAmalgamation", "MultiPartAmalgamation", "match_spatial", "load_union_split",
           "stack_datasets", "load_source"]
