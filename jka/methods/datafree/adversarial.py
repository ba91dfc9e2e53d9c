"""One-stage adversarial training (OSGAN, docs/methods.md "One-stage adversarial training"): both
players from ONE backward pass.

The critic (a student or a discriminator, θ_D) minimises ``L_d``, the generator (θ_G, x = G(z))
``L_g``. Both gradients come from the one backward pass of ``L_d`` if the cotangent reaching x is
transformed on its way into the generator:

- symmetric games (``L_g = −L_d``: ZSKT, DFAD, the minimax GAN) — :func:`reverse_gradient`, an
  identity whose VJP multiplies by −1, placed at the generator's output. Exact for any critic.
- asymmetric games (non-saturating GAN) — :func:`scale_input_gradient` wraps the critic
  ``p = D(θ_D, x)`` (one output p_i per sample) so that the cotangent leaving it towards x_i is
  multiplied by ``γ_i = (∂ℓ_g,i/∂p_i) / (∂ℓ_d,i/∂p_i)``. Since ∂ℓ/∂x_i = (∂ℓ/∂p_i)(∂p_i/∂x_i)
  when p_i depends on x_i only, the generator then receives exactly ∂L_g/∂θ_G, while θ_D
  receives the unscaled ∂L_d/∂θ_D. Exact only when the critic has no cross-sample coupling
  (GroupNorm, not BatchNorm in training mode).

γ for the BCE GAN with D returning a logit p (σ = sigmoid), fake sample i:
  critic      ℓ_d,i = −log(1 − σ(p_i)) = softplus(p_i),   ∂ℓ_d,i/∂p_i = σ(p_i)
  generator   ℓ_g,i = −log σ(p_i)      = softplus(−p_i),  ∂ℓ_g,i/∂p_i = −(1 − σ(p_i))
  γ_i = −(1 − σ(p_i)) / σ(p_i) = −e^{−p_i}                                     (:func:`bce_gamma`)
Both losses are means over the same batch, so the 1/B factors cancel. The real-image term of
L_d does not depend on x and needs no scaling.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_vjp
def reverse_gradient(x):
    """Identity in the forward pass; the backward pass multiplies the cotangent by −1."""
    return x


def _reverse_fwd(x):
    return x, None


def _reverse_bwd(_, g):
    return (jax.tree.map(jnp.negative, g),)


reverse_gradient.defvjp(_reverse_fwd, _reverse_bwd)


def _per_sample(gamma, g):
    """Multiply ``g`` (B, ...) by ``gamma`` (B,) along the leading axis."""
    return g * gamma.reshape(gamma.shape + (1,) * (g.ndim - gamma.ndim)).astype(g.dtype)


@jax.custom_vjp
def scale_gradient(x, gamma):
    """Identity on ``x`` (B, ...); the backward pass multiplies sample i's cotangent by ``gamma[i]``
    (no gradient to ``gamma``). For a γ that depends on the critic's output, :func:`scale_input_gradient`."""
    return x


def _scale_fwd(x, gamma):
    return x, gamma


def _scale_bwd(gamma, g):
    return _per_sample(gamma, g), jnp.zeros_like(gamma)


scale_gradient.defvjp(_scale_fwd, _scale_bwd)


def bce_gamma(p, max_exponent: float = 60.0):
    """``γ = −e^{−p}`` (non-saturating BCE GAN), the exponent clipped to stay finite in float32."""
    return -jnp.exp(jnp.minimum(-p.astype(jnp.float32), max_exponent))


def scale_input_gradient(critic, gamma_fn):
    """``critic(params, x) -> (p, aux)`` (p: (B,)) with, in the backward pass, the cotangent of ``x`` for
    sample i multiplied by ``gamma_fn(p)[i]`` (``params`` get theirs unchanged; ``aux`` is not differentiated)."""

    @jax.custom_vjp
    def wrapped(params, x):
        return critic(params, x)

    def fwd(params, x):
        p, vjp_fn, aux = jax.vjp(critic, params, x, has_aux=True)
        return (p, aux), (vjp_fn, gamma_fn(jax.lax.stop_gradient(p)))

    def bwd(res, cotangent):
        vjp_fn, gamma = res
        g_params, g_x = vjp_fn(cotangent[0])
        return g_params, _per_sample(gamma, g_x)

    wrapped.defvjp(fwd, bwd)
    return wrapped
