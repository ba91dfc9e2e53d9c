"""KD with singular value decomposition (Lee et al. 2018; RepDistiller's ``KDSVD``).

Per stage ℓ, the feature map is a matrix ``X = (H·W) × C`` per sample; ``v`` are its top right
singular vectors (teacher: k, each with its largest entry made positive since SVD signs are arbitrary;
student: k + 3, aligned to the teacher's by the largest |cosine| with its sign), each scaled by the
teacher's L2-normalised top-k singular values. Between consecutive stages,
``RBF_ij = exp(−(v^ℓ_i − v^ℓ−1_j)² / 8)`` (per channel pair i, j, per vector);
``L = Σ_ℓ Σ (RBF_s − RBF_t)² / B``. Student and teacher stages need equal widths (the algorithm adds
1×1 adapters otherwise). The student's singular vectors come from ``eigh(XᵀX)`` with a gradient that
ignores pairs of (near-)equal eigenvalues, so dead (all-zero) ReLU channels do not make it NaN.

The eigen-decompositions are chained (each input gets ``0 ×`` the previous result) so that XLA runs
them one after another: on CPU (jax 0.10.2) two LAPACK ``syevd`` calls scheduled concurrently inside
one compiled step sometimes never return (every thread idle). The chain costs nothing measurable.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jka.losses import f32, l2_normalize


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def top_eigh(g, n: int):
    """Largest ``n`` eigenvalues (descending) and eigenvectors ``(…, C, n)`` of symmetric ``g``."""
    return _top_eigh_fwd(g, n)[0]


def _top_eigh_fwd(g, n):
    w, v = jnp.linalg.eigh(g)
    w, v = w[..., ::-1], v[..., ::-1]
    return (w[..., :n], v[..., :n]), (w, v)


def _top_eigh_bwd(n, res, ct):
    w, v = res
    ct_w, ct_v = ct
    vn, wn = v[..., :n], w[..., :n]
    diff = wn[..., None, :] - w[..., :, None]  # [i, j] = λ_j − λ_i, i over all, j over the top n
    tol = 1e-7 * jnp.max(jnp.abs(w), axis=-1, keepdims=True)[..., None] + 1e-20
    inv = jnp.where(jnp.abs(diff) > tol, 1.0 / jnp.where(jnp.abs(diff) > tol, diff, 1.0), 0.0)
    c = jnp.einsum("...ci,...cj->...ij", v, ct_v) * inv
    ct_g = jnp.einsum("...ai,...ij,...bj->...ab", v, c, vn)
    ct_g = ct_g + jnp.einsum("...aj,...j,...bj->...ab", vn, ct_w, vn)
    return (0.5 * (ct_g + jnp.swapaxes(ct_g, -1, -2)),)


top_eigh.defvjp(_top_eigh_fwd, _top_eigh_bwd)


def right_singular(f, n: int):
    """``(B, H, W, C) → (σ (B, n), V (B, C, n))``: top singular values and right singular vectors."""
    b, h, w, c = f.shape
    x = f32(f).reshape(b, h * w, c)
    if h * w >= c:
        lam, v = top_eigh(jnp.einsum("bpc,bpd->bcd", x, x), n)
        return jnp.sqrt(jnp.maximum(lam, 0.0)), v
    # Fewer pixels than channels: eigen-decompose the smaller X Xᵀ, then v = Xᵀ u / σ.
    lam, u = top_eigh(jnp.einsum("bpc,bqc->bpq", x, x), n)
    sigma = jnp.sqrt(jnp.maximum(lam, 1e-12))
    return jnp.sqrt(jnp.maximum(lam, 0.0)), jnp.einsum("bpc,bpn->bcn", x, u) / sigma[:, None, :]


def canonical_sign(v):
    """Flip each vector ``(B, C, n)`` so that its largest-|·| entry is positive (SVD signs are arbitrary)."""
    idx = jnp.argmax(jnp.abs(v), axis=1, keepdims=True)
    return v * jnp.sign(jnp.take_along_axis(v, idx, axis=1))


def align(v_s, v_t):
    """Pick, for each teacher vector, the student vector with the largest |cosine|, with its sign."""
    cos = jnp.einsum("bci,bcj->bij", v_s, v_t)  # (B, n_s, n_t)
    best = jnp.max(jnp.abs(cos), axis=1, keepdims=True)
    mask = jax.lax.stop_gradient(jnp.where(jnp.abs(cos) == best, jnp.sign(cos), 0.0))
    return jnp.einsum("bci,bij->bcj", v_s, mask)


def rbf(v, v_prev):
    """``(B, C, k), (B, C', k) → (B, C, C', k)``."""
    return jnp.exp(-jnp.square(v[:, :, None, :] - v_prev[:, None, :, :]) / 8.0)


def svd(fs_list, ft_list, k: int = 1):
    total, prev = 0.0, None
    b = fs_list[0].shape[0]
    order = 0.0  # see the module note: chains the eigen-decompositions one after another
    for fs, ft in zip(fs_list, ft_list):
        s_t, v_t = right_singular(jax.lax.stop_gradient(f32(ft)) + order, k)
        order = 0.0 * jax.lax.stop_gradient(jnp.sum(v_t))
        _, v_s = right_singular(fs + order, k + 3)
        order = 0.0 * jax.lax.stop_gradient(jnp.sum(v_s))
        s_t = l2_normalize(s_t, axis=1)[:, None, :]
        v_t = canonical_sign(l2_normalize(v_t, axis=1)) * s_t
        v_s = align(l2_normalize(v_s, axis=1), v_t) * s_t
        if prev is not None:
            d = jnp.square(rbf(v_s, prev[0]) - rbf(v_t, prev[1]))
            total = total + jnp.sum(jnp.where(jnp.isfinite(d), d, 0.0)) / b
        prev = (v_s, v_t)
    return total
