"""Images for a person to look at: PNG grids of samples (host side, never inside training)."""
from __future__ import annotations

import math
import os

import jax
import numpy as np
from PIL import Image


def save_grid(path: str, images, nrow: int = 8, min_cell: int = 32) -> str:
    """Write [0, 1] NHWC ``images`` as one PNG grid (nearest-neighbour upscaled to ``min_cell``)."""
    x = np.clip(np.asarray(jax.device_get(images), np.float32), 0.0, 1.0)
    n, h, w, c = x.shape
    up = max(1, int(math.ceil(min_cell / max(h, w))))
    x = x.repeat(up, axis=1).repeat(up, axis=2)
    h, w = h * up, w * up
    ncol = min(nrow, n)
    nrows = int(math.ceil(n / ncol))
    grid = np.ones((nrows * (h + 2) + 2, ncol * (w + 2) + 2, c), np.float32)
    for i in range(n):
        r, col = divmod(i, ncol)
        grid[2 + r * (h + 2): 2 + r * (h + 2) + h, 2 + col * (w + 2): 2 + col * (w + 2) + w] = x[i]
    arr = (grid * 255).round().astype(np.uint8)
    arr = arr[..., 0] if c == 1 else arr
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(arr).save(path)
    return path
