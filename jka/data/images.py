"""Images for a person to look at: PNG grids of samples (host side, never inside training).

:func:`grid` tiles a batch into one uint8 picture; :func:`save_grid` writes it as a PNG and, given
a writer (:class:`jka.train.metrics.MetricWriter`), also sends the same picture to TensorBoard.
"""
from __future__ import annotations

import math
import os

import jax
import numpy as np
from PIL import Image

from jka import paths


def grid(images, nrow: int = 8, min_cell: int = 32) -> np.ndarray:
    """[0, 1] NHWC ``images`` tiled ``nrow`` to a row on a white background, as a uint8 HxWxC array:
    each upscaled (nearest neighbour) to a longer side of ``min_cell`` px or more; cells 2 px apart (and from
    the border)."""
    x = np.clip(np.asarray(jax.device_get(images), np.float32), 0.0, 1.0)
    if x.ndim != 4:
        raise ValueError(f"grid() takes NHWC images, got shape {x.shape}")
    n, h, w, c = x.shape
    up = max(1, int(math.ceil(min_cell / max(h, w))))
    x = x.repeat(up, axis=1).repeat(up, axis=2)
    h, w = h * up, w * up
    ncol = max(1, min(nrow, n))
    nrows = max(1, int(math.ceil(n / ncol)))
    out = np.ones((nrows * (h + 2) + 2, ncol * (w + 2) + 2, c), np.float32)
    for i in range(n):
        r, col = divmod(i, ncol)
        out[2 + r * (h + 2): 2 + r * (h + 2) + h, 2 + col * (w + 2): 2 + col * (w + 2) + w] = x[i]
    return (out * 255).round().astype(np.uint8)


def save_grid(path: str, images, nrow: int = 8, min_cell: int = 32, writer=None, step: int = 0,
              tag: str = "samples") -> str:
    """Write [0, 1] NHWC ``images`` as one PNG grid (:func:`grid`); ``writer`` (the run's MetricWriter, a
    no-op unless TensorBoard is on) also gets it, under ``tag`` at ``step`` (one tag per series, so
    TensorBoard shows its grids on one step slider)."""
    arr = grid(images, nrow, min_cell)
    paths.makedirs(os.path.dirname(paths.absolute(path)))
    paths.save_image(path, Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr))
    if writer is not None:
        writer.image(step, tag, arr)
    return path
