"""Flow of solution procedure (Yim et al. 2017).

``G(F¹, F²) = F¹ᵀ F² / (H·W)`` (``C¹ × C²`` per sample, ``F¹`` pooled to ``F²``'s size when larger)
for consecutive stages; ``L = Σ_pairs mean((G_s − G_t)²)``. Widths must match (the algorithm adds
1×1 adapters otherwise).
"""
from __future__ import annotations

import jax.numpy as jnp

from jka.losses import f32
from jka.losses.distill._common import pool_to


def fsp_matrix(f1, f2):
    f1, f2 = f32(f1), f32(f2)
    if f1.shape[1] > f2.shape[1]:
        f1 = pool_to(f1, f2.shape[1], f2.shape[2])
    b, h, w, _ = f2.shape
    return jnp.einsum("bpc,bpd->bcd", f1.reshape(b, h * w, -1), f2.reshape(b, h * w, -1)) / (h * w)


def fsp(fs_list, ft_list):
    total = 0.0
    for i in range(len(fs_list) - 1):
        g_s = fsp_matrix(fs_list[i], fs_list[i + 1])
        g_t = fsp_matrix(ft_list[i], ft_list[i + 1])
        total = total + jnp.mean(jnp.square(g_s - g_t))
    return total
