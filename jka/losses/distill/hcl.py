"""ReviewKD's hierarchical context loss (HCL; Chen et al., CVPR 2021): the student's fused map is
compared with the teacher's at full resolution and after adaptive average pooling to 4×4, 2×2 and
1×1, each pooled level weighing half the one before, the sum normalised by the weights."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jka.losses import f32

LEVELS = (4, 2, 1)


def adaptive_pool_matrix(size: int, out: int) -> np.ndarray:
    """``out × size`` averaging matrix of PyTorch's adaptive average pooling along one axis: output ``i``
    averages inputs ``floor(i·size/out) .. ceil((i+1)·size/out) − 1`` (windows overlap when ``out`` does not
    divide ``size``)."""
    m = np.zeros((out, size), np.float32)
    for i in range(out):
        lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def adaptive_avg_pool(x, out: int):
    """An NHWC map average-pooled adaptively to ``out × out``."""
    rows, cols = adaptive_pool_matrix(x.shape[1], out), adaptive_pool_matrix(x.shape[2], out)
    return jnp.einsum("ih,jw,nhwc->nijc", rows, cols, x)


def hcl(fs_list, ft_list):
    """``Σ_pairs [mse(F_s, F_t) + Σ_{l<H} w_l·mse(pool_l F_s, pool_l F_t)] / (1 + Σ w_l)`` over the levels
    4, 2, 1 smaller than the map (``H`` its height), ``w`` = ½, ¼, ⅛ in the order they are used (a 4×4 map:
    ½ at 2×2, ¼ at 1×1; a 1×1 map: its MSE alone); maps of the same shape."""
    total = 0.0
    for fs, ft in zip(fs_list, ft_list):
        fs, ft = f32(fs), f32(ft)
        loss, weight, norm = jnp.mean(jnp.square(fs - ft)), 1.0, 1.0
        for level in LEVELS:
            if level >= fs.shape[1]:
                continue
            weight /= 2.0
            loss = loss + weight * jnp.mean(jnp.square(adaptive_avg_pool(fs, level) - adaptive_avg_pool(ft, level)))
            norm += weight
        total = total + loss / norm
    return total
