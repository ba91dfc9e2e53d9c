"""Attribution maps (docs/methods.md, "Transferability"): gradient × input or saliency of
``g(x) = ‖vec(f(x))‖₂``, ``f`` a chosen feature map of a model (or its logits), ``x`` the raw probe
image in [0, 1] (the input every model of a zoo shares; each model's own normalisation is part of
``f``), averaged over channels to one ``(H, W)`` map per image. The per-image gradient is ``vmap``-ed
over the probe set, compiled once per (model, layer, method), and the probe set is sharded over the
``data`` axis of a mesh (:mod:`jka.train.mesh`)."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jka.errors import ConfigError, unknown_choice
from jka.train import mesh as mesh_lib

METHODS = ("grad_input", "saliency")
LOGITS = "logits"
# Keeps the gradient of the norm finite when a feature map is exactly zero.
_NORM_EPS = 1e-12


@dataclasses.dataclass(eq=False)
class ZooModel:
    """A trained network of a zoo: module, variables and the input it expects."""

    name: str
    arch: str
    module: Any
    variables: dict
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    image_shape: tuple | None = None
    info: dict = dataclasses.field(default_factory=dict)

    def layer_output(self, variables, x, layer: str):
        """Output of ``layer`` (a feature name or ``'logits'``) for raw images ``x`` (B, H, W, C)."""
        xn = (x - jnp.asarray(self.mean, x.dtype)) / jnp.asarray(self.std, x.dtype)
        logits, feats = self.module.apply(variables, xn, train=False)
        if layer == LOGITS:
            return logits
        if layer not in feats:
            raise ConfigError(f"model {self.name!r} ({self.arch}) has no feature {layer!r}; "
                              f"choose one of: {', '.join(sorted(feats) + [LOGITS])}")
        return feats[layer]

    def layers(self) -> list[str]:
        """Feature names of this model (from an abstract evaluation), then ``'logits'``."""
        shape = self.image_shape or (8, 8, 1)
        x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
        _, feats = jax.eval_shape(lambda v, x: self.module.apply(v, x, train=False), self.variables, x)
        return list(feats) + [LOGITS]


def fit_probe(model: ZooModel, images: np.ndarray) -> np.ndarray:
    """Probe images resized (bilinear) to the model's input size, float32 in [0, 1]."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ConfigError(f"probe images must be (N, H, W, C), got shape {images.shape}")
    if model.image_shape is None or tuple(images.shape[1:]) == tuple(model.image_shape):
        return images
    h, w, c = model.image_shape
    if images.shape[-1] != c:
        raise ConfigError(f"probe images have {images.shape[-1]} channels but model {model.name!r} "
                          f"expects {c}; use a probe set of the models' input kind")
    out = jax.image.resize(images, (images.shape[0], h, w, c), "bilinear", antialias=True)
    return np.asarray(out)


def attribution_of(model: ZooModel, layer: str, method: str):
    """``(variables, x_one) -> (H, W)`` map of one image (the pure, unbatched formula)."""

    def g(variables, x):
        f = model.layer_output(variables, x[None], layer).astype(jnp.float32)
        return jnp.sqrt(jnp.sum(jnp.square(f)) + _NORM_EPS)

    def one(variables, x):
        grad = jax.grad(g, argnums=1)(variables, x)
        a = x * grad if method == "grad_input" else jnp.abs(grad)
        return jnp.mean(a, axis=-1)

    return one


_CACHE: dict = {}


def _compiled(model: ZooModel, layer: str, method: str | None, mesh):
    """Jitted, probe-sharded batch function: attribution maps (method) or flattened features (None)."""
    # Models that differ only in their variables share one compiled function (variables are arguments).
    key = (model.module, tuple(model.mean), tuple(model.std), layer, method, mesh)
    if key in _CACHE:
        return _CACHE[key]
    if method is None:
        def batch_fn(variables, x):
            f = model.layer_output(variables, x, layer).astype(jnp.float32)
            return f.reshape(f.shape[0], -1)
    else:
        batch_fn = jax.vmap(attribution_of(model, layer, method), in_axes=(None, 0))
    fn = jax.jit(batch_fn, in_shardings=(mesh_lib.replicated(mesh), mesh_lib.data_sharding(mesh)),
                 out_shardings=mesh_lib.data_sharding(mesh))
    _CACHE[key] = fn
    return fn


def _run_sharded(fn, variables, images: np.ndarray, mesh, batch_size: int) -> np.ndarray:
    """``fn`` over ``images`` in fixed-size chunks (a multiple of the data devices; last one padded)."""
    n_dev = mesh_lib.batch_devices(mesh)
    bs = max(n_dev, (min(batch_size, len(images)) + n_dev - 1) // n_dev * n_dev)
    sharding = mesh_lib.data_sharding(mesh)
    variables = jax.device_put(variables, mesh_lib.replicated(mesh))
    outs = []
    for start in range(0, len(images), bs):
        chunk = images[start:start + bs]
        n = len(chunk)
        if n < bs:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], bs - n, axis=0)])
        out = fn(variables, jax.device_put(chunk, sharding))
        outs.append(np.asarray(jax.device_get(out))[:n])
    return np.concatenate(outs)


def _over_probe(model: ZooModel, images: np.ndarray, layer: str, method: str | None, mesh, batch_size: int):
    mesh = mesh or mesh_lib.make_mesh()
    fn = _compiled(model, layer, method, mesh)
    return _run_sharded(fn, model.variables, fit_probe(model, images), mesh, batch_size)


def attribution_maps(model: ZooModel, images: np.ndarray, layer: str = "pooled", method: str = "grad_input",
                     mesh=None, batch_size: int = 256) -> np.ndarray:
    """(N, H, W) attribution maps of ``model`` on raw probe ``images`` (N, H, W, C) in [0, 1]."""
    if method not in METHODS:
        raise unknown_choice("attribution method", method, METHODS)
    return _over_probe(model, images, layer, method, mesh, batch_size)


def feature_vectors(model: ZooModel, images: np.ndarray, layer: str = "pooled", mesh=None,
                    batch_size: int = 256) -> np.ndarray:
    """(N, D) flattened ``layer`` outputs of ``model`` on raw ``images``."""
    return _over_probe(model, images, layer, None, mesh, batch_size)
