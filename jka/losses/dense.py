"""Dense-task losses and metrics (docs/methods.md, "Task branching"), one place per formula.

The segmentation mimic term is :func:`jka.losses.kd` itself: on (B, H, W, C) logits it is the
per-pixel KL averaged over batch and pixels.

Shapes: predictions are NHWC (segmentation logits (B, H, W, C), depth (B, H, W) or (B, H, W, 1));
labels are (B, H, W) integers with ``IGNORE`` (255) for unlabelled pixels; ground-truth depth is
(B, H, W) with ``depth <= 0`` (or non-finite) marking invalid pixels.

Metrics are accumulated over a whole split as *sums* (a confusion matrix for segmentation, sums
of errors and counts for depth), so every pixel counts once whatever the batching:
- pixel accuracy = Σ_c conf[c, c] / Σ conf;
- IoU_c = conf[c, c] / (Σ_j conf[c, j] + Σ_i conf[i, c] − conf[c, c]); mIoU is the mean over the
  classes with a non-empty union (present in the labels or predicted);
- depth over the valid pixels P: RMSE = sqrt(Σ_P (d̂ − d)² / |P|), abs-rel = Σ_P |d̂ − d| / d / |P|,
  δ_k = |{p ∈ P : max(d̂/d, d/d̂) < 1.25^k}| / |P| for k = 1, 2, 3 (d̂ clamped to ≥ ``MIN_DEPTH``).
"""
from __future__ import annotations

import jax.numpy as jnp

IGNORE = 255
MIN_DEPTH = 1e-3


def _depth_map(d):
    d = jnp.asarray(d, jnp.float32)
    return d[..., 0] if d.ndim == 4 else d


def valid_depth(depth):
    """Mask of pixels whose ground-truth depth is usable (finite and > 0)."""
    depth = _depth_map(depth)
    return jnp.isfinite(depth) & (depth > 0)


# -- losses ----------------------------------------------------------------------------------------
def _masked_mean(err, valid):
    if valid is None:
        return err.mean()
    valid = valid.astype(jnp.float32)
    return jnp.sum(jnp.where(valid > 0, err, 0.0)) / jnp.maximum(valid.sum(), 1.0)


def masked_l1(pred, target, valid=None):
    """Mean |pred − target| over the pixels where ``valid`` (all pixels when None)."""
    return _masked_mean(jnp.abs(_depth_map(pred) - _depth_map(target)), valid)


def masked_l2(pred, target, valid=None):
    """Mean (pred − target)² over the pixels where ``valid`` (all pixels when None)."""
    return _masked_mean(jnp.square(_depth_map(pred) - _depth_map(target)), valid)


# -- metric sums -------------------------------------------------------------------------------------
def confusion_matrix(logits_or_pred, labels, num_classes: int, weight=None):
    """(C, C) counts, rows = true class, columns = predicted; ``IGNORE`` labels (and any label
    outside 0..C−1) are left out. ``logits_or_pred`` is (B, H, W, C) logits or (B, H, W) classes.
    ``weight`` (B,) masks padded samples."""
    pred = logits_or_pred if logits_or_pred.ndim == labels.ndim else jnp.argmax(logits_or_pred, axis=-1)
    labels = labels.astype(jnp.int32)
    ok = (labels >= 0) & (labels < num_classes)
    w = ok.astype(jnp.float32)
    if weight is not None:
        w = w * weight.reshape((-1,) + (1,) * (labels.ndim - 1))
    flat = jnp.where(ok, labels, 0) * num_classes + pred.astype(jnp.int32)
    counts = jnp.zeros(num_classes * num_classes, jnp.float32).at[flat.reshape(-1)].add(w.reshape(-1))
    return counts.reshape(num_classes, num_classes)


def depth_sums(pred, target, weight=None):
    """Sums over valid pixels: count, squared error, abs-rel, and δ < 1.25^k counts (k = 1, 2, 3)."""
    pred, target = _depth_map(pred), _depth_map(target)
    valid = valid_depth(target).astype(jnp.float32)
    if weight is not None:
        valid = valid * weight.reshape((-1, 1, 1))
    t = jnp.where(valid > 0, target, 1.0)
    p = jnp.maximum(pred, MIN_DEPTH)
    ratio = jnp.maximum(p / t, t / p)
    return {"n": valid.sum(), "sq_err": jnp.sum(valid * jnp.square(pred - t)),
            "abs_rel": jnp.sum(valid * jnp.abs(pred - t) / t),
            **{f"delta{k}": jnp.sum(valid * (ratio < 1.25 ** k)) for k in (1, 2, 3)}}


# -- scores from sums ------------------------------------------------------------------------------------
def segmentation_scores(conf) -> dict:
    """Pixel accuracy and mIoU from a confusion matrix (see the module docstring)."""
    conf = jnp.asarray(conf, jnp.float32)
    tp = jnp.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    iou = jnp.where(present, tp / jnp.maximum(union, 1.0), 0.0)
    return {"pixel_acc": float(tp.sum() / jnp.maximum(conf.sum(), 1.0)),
            "miou": float(iou.sum() / jnp.maximum(present.sum(), 1))}


def depth_scores(sums) -> dict:
    """RMSE, abs-rel and δ_k from :func:`depth_sums` totals."""
    n = max(float(sums["n"]), 1.0)
    return {"rmse": float(jnp.sqrt(sums["sq_err"] / n)), "abs_rel": float(sums["abs_rel"] / n),
            **{f"delta{k}": float(sums[f"delta{k}"] / n) for k in (1, 2, 3)}}
