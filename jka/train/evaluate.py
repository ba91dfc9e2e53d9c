"""Evaluation of a student on held-out data, sharded over the mesh like training."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jka.data.core import eval_indices, process_slice, to_global
from jka.train import mesh as mesh_lib


@functools.cache
def compiled(fn, mesh):
    """``jax.jit(fn)`` with replicated outputs, cached per (function, mesh)."""
    return jax.jit(fn, out_shardings=mesh_lib.replicated(mesh))


def predict_all(predict, state, ds, batch_size: int, mesh, with_labels: bool = False):
    """Outputs of ``predict(state, images)`` over all of ``ds`` in order (host numpy, whole on every
    process; each reads only its rows). ``with_labels``: the labels too, gathered the same way (a
    dataset read on demand is never read whole for its labels)."""
    sharding = mesh_lib.data_sharding(mesh)
    n_dev = mesh_lib.batch_devices(mesh)
    bs = max(n_dev, (min(batch_size, len(ds)) // n_dev) * n_dev)  # divisible by devices and processes
    fn = compiled(predict, mesh)
    gather = compiled(_identity, mesh)
    outs, labels = [], []
    for rows, n_valid in eval_indices(len(ds), bs):
        images, y = ds.take(process_slice(rows))
        out = fn(state, to_global({"image": images}, sharding)["image"])
        outs.append(np.asarray(jax.device_get(out))[:n_valid])
        if with_labels:
            y = gather(to_global({"y": y.astype(np.int32)}, sharding)["y"])
            labels.append(np.asarray(jax.device_get(y))[:n_valid])
    out = np.concatenate(outs)
    return (out, np.concatenate(labels)) if with_labels else out


def _identity(x):
    return x


@functools.cache
def _argmax_of(predict):
    """One stable function object per ``predict`` so the jit cache hits on every evaluation."""
    return lambda s, x: jnp.argmax(predict(s, x), -1)


def classification_eval(predict, state, ds, batch_size: int, mesh, groups=None) -> dict:
    """Accuracy on ``ds`` (labels in the student's output order), and per group of output indices."""
    pred, labels = predict_all(_argmax_of(predict), state, ds, batch_size, mesh, with_labels=True)
    out = {"accuracy": float(np.mean(pred == labels))}
    for name, idx in (groups or {}).items():
        sel = np.isin(labels, idx)
        out[name] = float(np.mean(pred[sel] == labels[sel])) if sel.any() else float("nan")
    return out
