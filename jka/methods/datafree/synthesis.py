"""Device-side pieces shared by the data-free methods (DeepInversion, CMI, the generator methods): the
:class:`RingBuffer` in the training state (the image pool, CMI's memory bank: no synthesized image
goes through the host), CMI's two augmented views (:func:`global_view`, :func:`local_view`: both keep
shape and the [0, 1] range), :func:`teacher_inversion_forward` (a frozen teacher's logits, ``R_bn`` and
per-sample BatchNorm input means) and :func:`scan_steps` (training steps, unrolled when few).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from jka.data.augment import random_crop_flip, to_unit
from jka.errors import ConfigError
from jka.losses.priors import bn_statistics

# Scans of at most this many steps are fully unrolled by :func:`scan_steps`.
SCAN_UNROLL_MAX = 16


def scan_steps(body, init, xs=None, length=None):
    """``jax.lax.scan(body, init, xs, length)``, written out step by step up to ``SCAN_UNROLL_MAX`` steps.

    XLA:CPU runs the same steps several times slower inside a loop: on the 2-core CPU a DFAD digits unit
    (batch 256, 1 generator + 5 student steps) took 0.59-0.63 s as ``lax.scan(unroll=n)``, 0.20 s written
    out. Longer loops stay a rolled ``lax.scan``: compile time grows with the steps written out (a CMI
    round of 40 + 60 steps had not compiled after 5 minutes unrolled).
    """
    n = int(length) if length is not None else int(jax.tree.leaves(xs)[0].shape[0])
    if n > SCAN_UNROLL_MAX:
        return jax.lax.scan(body, init, xs, length)
    carry, ys = init, []
    for i in range(n):
        carry, y = body(carry, None if xs is None else jax.tree.map(lambda a: a[i], xs))
        ys.append(y)
    if not ys:  # n == 0: lax.scan's empty outputs need the body's output structure
        return jax.lax.scan(body, init, xs, 0)
    return carry, jax.tree.map(lambda *v: jnp.stack(v), *ys)


# -- ring buffers (image pool, memory bank) ---------------------------------------------------------
@struct.dataclass
class RingBuffer:
    """``capacity`` items of one shape; ``add`` writes at ``ptr`` and wraps around, overwriting the oldest,
    so the ``count`` valid items are exactly ``data[:count]``."""

    data: jax.Array
    count: jax.Array
    ptr: jax.Array

    @classmethod
    def create(cls, capacity: int, item_shape, dtype=jnp.float32) -> "RingBuffer":
        if int(capacity) < 1:
            raise ConfigError(f"a ring buffer needs capacity >= 1, got {capacity}; raise the pool/bank size")
        return cls(data=jnp.zeros((int(capacity),) + tuple(item_shape), dtype),
                   count=jnp.zeros((), jnp.int32), ptr=jnp.zeros((), jnp.int32))

    @property
    def capacity(self) -> int:
        return self.data.shape[0]

    def add(self, items) -> "RingBuffer":
        """Append a batch (``items.shape[0] <= capacity``), overwriting the oldest entries when full."""
        n = items.shape[0]
        if n > self.capacity:
            raise ConfigError(f"cannot add {n} items to a ring buffer of capacity {self.capacity}; "
                              "make the pool/bank at least one synthesis batch large")
        idx = (self.ptr + jnp.arange(n)) % self.capacity
        data = self.data.at[idx].set(items.astype(self.data.dtype))
        return self.replace(data=data, count=jnp.minimum(self.count + n, self.capacity),
                            ptr=(self.ptr + n) % self.capacity)

    def sample(self, rng, n: int):
        """``n`` valid items drawn uniformly with replacement (zeros while the buffer is empty)."""
        u = jax.random.uniform(rng, (n,))
        idx = jnp.minimum((u * self.count).astype(jnp.int32), jnp.maximum(self.count - 1, 0))
        return self.data[idx]

    def sample_distinct(self, rng, n: int):
        """(items, valid): ``n`` distinct slots (contrastive negatives), the valid ones first, shuffled."""
        n = min(int(n), self.capacity)
        slots = jnp.arange(self.capacity)
        key = jax.random.uniform(rng, (self.capacity,)) + (slots >= self.count).astype(jnp.float32) * 2.0
        idx = jnp.argsort(key)[:n]
        return self.data[idx], idx < self.count


def to_pool(images, dtype):
    """[0, 1] float images → the pool's storage dtype (uint8 quantises to 1/255)."""
    if dtype == jnp.uint8:
        return jnp.round(jnp.clip(images, 0.0, 1.0) * 255.0).astype(jnp.uint8)
    return images.astype(dtype)


from_pool = to_unit  # pool storage → [0, 1] float32 images


# -- augmented views (on the device) ----------------------------------------------------------------
def random_flip(rng, x):
    do = jax.random.bernoulli(rng, 0.5, (x.shape[0], 1, 1, 1))
    return jnp.where(do, x[:, :, ::-1, :], x)


global_view = random_crop_flip  # CMI's global view: random crop after zero padding, random horizontal flip


def _bilinear_crop(img, top, left, h, w):
    """Resample the box (top, left, h, w) of one HWC image back to its full size, bilinearly."""
    H, W = img.shape[0], img.shape[1]
    ys = jnp.clip(top + (jnp.arange(H) + 0.5) * h / H - 0.5, 0.0, H - 1.0)
    xs = jnp.clip(left + (jnp.arange(W) + 0.5) * w / W - 0.5, 0.0, W - 1.0)
    y0 = jnp.floor(ys).astype(jnp.int32)
    x0 = jnp.floor(xs).astype(jnp.int32)
    y1, x1 = jnp.minimum(y0 + 1, H - 1), jnp.minimum(x0 + 1, W - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    rows = img[y0] * (1.0 - wy) + img[y1] * wy
    return rows[:, x0] * (1.0 - wx) + rows[:, x1] * wx


def local_view(rng, x, scale=(0.25, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), flip: bool = True):
    """Random resized crop (area fraction ``scale``, aspect ``ratio``), resized back bilinearly, random flip."""
    n, H, W, _ = x.shape
    k_area, k_ratio, k_y, k_x, k_flip = jax.random.split(rng, 5)
    area = jax.random.uniform(k_area, (n,), minval=scale[0], maxval=scale[1]) * H * W
    log_r = jax.random.uniform(k_ratio, (n,), minval=math.log(ratio[0]), maxval=math.log(ratio[1]))
    r = jnp.exp(log_r)
    w = jnp.clip(jnp.sqrt(area * r), 1.0, W)
    h = jnp.clip(jnp.sqrt(area / r), 1.0, H)
    top = jax.random.uniform(k_y, (n,)) * (H - h)
    left = jax.random.uniform(k_x, (n,)) * (W - w)
    out = jax.vmap(_bilinear_crop)(x.astype(jnp.float32), top, left, h, w).astype(x.dtype)
    return random_flip(k_flip, out) if flip else out


# -- teacher forward pass for inversion -------------------------------------------------------------
def bn_inputs_in_call_order(bn_stats) -> list:
    """The inputs sown by every BatchNorm in call order (the dicts' insertion order; jax.tree sorts by name)."""
    return [a for key, value in bn_stats.items()
            for a in ([value[0]] if key == "input" else bn_inputs_in_call_order(value))]


def teacher_inversion_forward(teacher, variables, x, instance_means: bool = False):
    """(logits, features, R_bn, means) of a frozen teacher on ``x`` (normalised, NHWC), gradients to ``x``
    only; ``means`` (``instance_means``, else None): the per-sample spatial mean of every BatchNorm's
    input, concatenated in call order, (N, D)."""
    variables = jax.lax.stop_gradient(variables)
    (logits, feats), upd = teacher.module.apply(variables, x, train=False, mutable=["bn_stats"])
    r_bn = bn_statistics(upd["bn_stats"], variables["batch_stats"])
    means = None
    if instance_means:
        means = jnp.concatenate([a.astype(jnp.float32).mean(axis=tuple(range(1, a.ndim - 1)))
                                 for a in bn_inputs_in_call_order(upd["bn_stats"])], axis=-1)
    return logits, feats, r_bn, means
