"""Dense tasks on the shared training core, and the supervised dense algorithm (how task
branching's teachers are made).

``DenseAlgorithm`` is the base of every algorithm whose data is a ``jka.data.scenes.DenseDataset``
(images with a segmentation map and a depth map): it loads ``cfg.data`` through
``load_dense_split`` (``data.name``: ``scenes`` | ``nyuv2``), serves step-indexed batches, prepares
inputs (normalised with the training set's mean/std; the only augmentation is a horizontal flip,
``data.augment.flip``, applied to the image *and* its maps together) and evaluates dense outputs by
accumulating metric sums over the whole test split (``jka.losses.dense``).

``dense_supervised`` trains one dense network from labels, ``dense.kind``:
- ``segmentation``: ``num_classes`` logits per pixel, loss = cross-entropy over labelled pixels
  (label 255 ignored); eval ``miou``, ``pixel_acc`` (also as ``accuracy``);
- ``depth``: one channel (metres), loss = L1 over valid pixels (ground truth > 0), or L2 with
  ``dense.depth_loss = "l2"``; eval ``rmse``, ``abs_rel``, ``delta1..3``.
The exported model's ``model.json`` records ``task_kind``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jka import losses
from jka.algorithms.base import Algorithm
from jka.data.augment import to_float
from jka.data.core import process_slice, to_global
from jka.data.scenes import DenseBatches, dense_eval_batches, load_dense_split
from jka.errors import ConfigError
from jka.losses import dense
from jka.train import mesh as mesh_lib
from jka.train.evaluate import compiled

KINDS = ("segmentation", "depth")
_ALIASES = {"seg": "segmentation", "segmentation": "segmentation", "depth": "depth"}
DEPTH_LOSSES = ("l1", "l2")


def task_kind(kind) -> str:
    """``seg``/``segmentation``/``depth`` → the canonical kind, or a ConfigError."""
    if kind not in _ALIASES:
        raise ConfigError(f"unknown dense task kind {kind!r}; valid choices: depth, segmentation (or seg)")
    return _ALIASES[kind]


def flip_rows(rng, *arrays):
    """Flip each sample of every (B, H, W, ...) array horizontally with probability 1/2, the same
    samples in all arrays (an image and its dense maps stay aligned)."""
    b = arrays[0].shape[0]
    flip = jax.random.bernoulli(rng, 0.5, (b,))
    out = []
    for a in arrays:
        f = flip.reshape((b,) + (1,) * (a.ndim - 1))
        out.append(jnp.where(f, a[:, :, ::-1], a))
    return out


def task_sums(kind: str, out, batch, num_classes: int):
    """Metric sums of one task's output on a batch (padded samples masked by ``batch['mask']``)."""
    if kind == "segmentation":
        return dense.confusion_matrix(out, batch["seg"], num_classes, batch["mask"])
    return dense.depth_sums(out, batch["depth"], batch["mask"])


def task_scores(kind: str, sums) -> dict:
    return dense.segmentation_scores(sums) if kind == "segmentation" else dense.depth_scores(sums)


def dense_metric_sums(sums_fn, state, ds, batch_size: int, mesh):
    """Σ over the test split of ``sums_fn(state, batch)`` (any pytree of sums), on the host."""
    sharding = mesh_lib.data_sharding(mesh)
    n_dev = mesh_lib.batch_devices(mesh)
    bs = max(n_dev, (min(batch_size, len(ds)) // n_dev) * n_dev)
    fn = compiled(sums_fn, mesh)
    total = None
    for batch in dense_eval_batches(ds, bs):
        local = {k: process_slice(v) for k, v in batch.items()}  # this process's rows only
        sums = jax.device_get(fn(state, to_global(local, sharding)))
        sums = jax.tree.map(lambda a: np.asarray(a, np.float64), sums)
        total = sums if total is None else jax.tree.map(np.add, total, sums)
    return total


class ImageBatches(DenseBatches):
    """Dense batches with the images only: what a student that learns from teachers receives."""

    def host_batch(self, step: int) -> dict:
        return {"image": super().host_batch(step)["image"]}


class DenseAlgorithm(Algorithm):
    """Base of the dense-task algorithms (data, input preparation, batches)."""

    def dense_classes(self) -> list:
        """The student's output channels (``student_classes``)."""
        raise NotImplementedError

    def load_data(self):
        self.train_ds = load_dense_split(self.cfg.data, "train")
        self.test_ds = load_dense_split(self.cfg.data, "test")
        if self.train_ds.images.shape[1:] != self.test_ds.images.shape[1:]:
            raise ConfigError("the dense train and test images differ in size; prepare both splits at one size")
        self.num_seg_classes = int(self.train_ds.num_classes)
        self.mean, self.std = self.train_ds.mean, self.train_ds.std
        self.student_classes = list(self.dense_classes())

    def train_batches(self, seed: int):
        cls = DenseBatches if self.uses_labels else ImageBatches
        return cls(self.train_ds, int(self.cfg.data.batch_size), seed)

    def prepare(self, rng, images, augment: bool = False):
        """Normalised inputs; dense algorithms flip in their step (maps flip with the image)."""
        return to_float(images, self.mean, self.std).astype(self.dtype)

    def flips(self) -> bool:
        return bool(self.cfg.data.get("augment", {}).get("flip", False))

    def train_step(self, state, teacher_vars, batch):
        """The shared step, with the image and its dense maps flipped together (``data.augment.flip``);
        ``loss`` receives the maps (``seg``, ``depth``; none for a student of teachers)."""
        state, rng = state.next_rng()
        k_flip, k_loss = jax.random.split(rng)
        x = self.prepare(None, batch["image"])
        maps = {k: v for k, v in batch.items() if k != "image"}
        if self.flips():
            x, *flipped = flip_rows(k_flip, x, *maps.values())
            maps = dict(zip(maps, flipped))
        grad_fn = jax.value_and_grad(self.loss, has_aux=True)
        (loss, (new_bs, metrics)), grads = grad_fn(state.params, state.batch_stats, teacher_vars, x, maps, k_loss)
        state = state.apply_gradients(grads, batch_stats=new_bs)
        return state, {"loss": loss, **metrics}


class DenseSupervised(DenseAlgorithm):
    """One SegNet-style dense network from labels (segmentation or depth)."""

    name = "dense_supervised"
    uses_labels = True

    def __init__(self, cfg, teachers):
        section = cfg.get("dense", None)
        if section is None or section.get("kind", None) is None:
            raise ConfigError("dense_supervised needs dense.kind (segmentation or depth); "
                              "see configs/amalgamation/scenes_teacher_seg.py")
        self.kind = task_kind(section.kind)
        self.depth_loss = section.get("depth_loss", "l1")
        if self.depth_loss not in DEPTH_LOSSES:
            raise ConfigError(f"dense.depth_loss must be one of {DEPTH_LOSSES}, not {self.depth_loss!r}")
        super().__init__(cfg, teachers)
        self._sums_fn = self._sums

    def dense_classes(self):
        return list(range(self.num_seg_classes)) if self.kind == "segmentation" else [0]

    def init(self, rng, batch):
        """A depth net starts predicting the mean valid training depth (its head's bias), so the
        first steps are not spent climbing from 0 to a few metres."""
        state = super().init(rng, batch)
        if self.kind == "depth" and isinstance(state.params, dict) and "head" in state.params:
            depth = self.train_ds.depth
            mean = float(depth[depth > 0].mean()) if (depth > 0).any() else 0.0
            params = dict(state.params)
            params["head"] = {**params["head"], "bias": jnp.full_like(params["head"]["bias"], mean)}
            state = state.replace(params=params, opt_state=state.tx.init(params))
        return state

    def loss(self, params, batch_stats, teacher_vars, x, batch, rng):
        out, _, new_bs = self.apply_student(params, batch_stats, x, train=True)
        if self.kind == "segmentation":
            loss = losses.cross_entropy(out, batch["seg"], ignore_index=dense.IGNORE)
        else:
            valid = dense.valid_depth(batch["depth"])
            if self.depth_loss == "l1":
                loss = dense.masked_l1(out, batch["depth"], valid)
            else:
                loss = dense.masked_l2(out, batch["depth"], valid)
        return loss, (new_bs, {self.kind: loss})

    def _sums(self, state, batch):
        out, _, _ = self.apply_student(state.params, state.batch_stats, self.prepare(None, batch["image"]), train=False)
        return task_sums(self.kind, out, batch, self.num_seg_classes)

    def evaluate(self, state, mesh) -> dict:
        scores = task_scores(self.kind, dense_metric_sums(self._sums_fn, state, self.test_ds,
                                                          int(self.cfg.data.batch_size), mesh))
        if self.kind == "segmentation":
            scores["accuracy"] = scores["pixel_acc"]
        return scores

    def input_info(self) -> dict:
        return {**super().input_info(), "task_kind": self.kind}
