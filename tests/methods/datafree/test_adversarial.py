"""One-stage custom VJPs equal the two-stage gradients on small networks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import losses
from jka.methods.datafree import adversarial
from jka.methods.datafree.gan import bce_d_loss, generator_loss
from jka.models.generators import DCGANDiscriminator, DCGANGenerator


def _close(a, b, tol=1e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


def test_reverse_gradient_is_identity_with_negated_vjp():
    x = jnp.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(adversarial.reverse_gradient(x), x)
    g = jax.grad(lambda v: jnp.sum(adversarial.reverse_gradient(v) ** 2))(x)
    np.testing.assert_allclose(g, -2 * x)


def test_scale_gradient_per_sample():
    x = jnp.ones((3, 2, 2, 1))
    gamma = jnp.array([1.0, -2.0, 0.5])
    g = jax.grad(lambda v: jnp.sum(adversarial.scale_gradient(v, gamma) * 3.0))(x)
    np.testing.assert_allclose(g[:, 0, 0, 0], 3.0 * np.array([1.0, -2.0, 0.5]))


def test_bce_gamma_is_ratio_of_loss_derivatives():
    p = np.array([-3.0, -0.5, 0.0, 1.5, 4.0])
    sig = 1 / (1 + np.exp(-p))
    d_g = -(1 - sig)          # d softplus(-p) / dp
    d_d = sig                 # d softplus(p) / dp
    np.testing.assert_allclose(adversarial.bce_gamma(jnp.asarray(p)), d_g / d_d, rtol=1e-6)


def _tiny_players():
    G, S = DCGANGenerator(nz=4, ngf=4, img_size=8, nc=1), DCGANDiscriminator(ndf=4, img_size=8, norm="group")
    z = jax.random.normal(jax.random.PRNGKey(0), (5, 4))
    gv = G.init(jax.random.PRNGKey(1), z, train=False)
    dv = S.init(jax.random.PRNGKey(2), jnp.zeros((5, 8, 8, 1)), train=False)
    real = jax.random.uniform(jax.random.PRNGKey(3), (5, 8, 8, 1))
    return G, S, z, gv, dv, real


def _gen(G, gv, gp, z):
    return G.apply({"params": gp, "batch_stats": gv["batch_stats"]}, z, train=True, mutable=["batch_stats"])[0]


def test_reversal_gives_minus_student_loss_gradients():
    """Symmetric game on a small network: student S fits a fixed target on G's images."""
    G, S, z, gv, sv, _ = _tiny_players()
    target = jnp.linspace(-1, 1, 5)

    def student_loss(gp, sp, reverse):
        x = _gen(G, gv, gp, z)
        x = adversarial.reverse_gradient(x) if reverse else x
        return jnp.mean(jnp.abs(S.apply(sp, x) - target))

    g_gen, g_s = jax.grad(student_loss, argnums=(0, 1))(gv["params"], sv, True)
    ref_gen, ref_s = jax.grad(student_loss, argnums=(0, 1))(gv["params"], sv, False)
    _close(g_s, ref_s)
    _close(g_gen, jax.tree.map(jnp.negative, ref_gen))


@pytest.mark.parametrize("kind", ["asymmetric", "symmetric"])
def test_one_stage_gan_gradients_equal_two_stage(kind):
    """One backward pass of L_d gives D ∇L_d and G ∇L_g (GroupNorm D: exact)."""
    G, D, z, gv, dv, real = _tiny_players()

    def critic(d_vars, x):
        return D.apply(d_vars, x), {}

    scaled = adversarial.scale_input_gradient(critic, adversarial.bce_gamma)

    def one_stage(gp, dp):
        fake = _gen(G, gv, gp, z)
        if kind == "symmetric":
            p_fake = critic(dp, adversarial.reverse_gradient(fake))[0]
        else:
            p_fake = scaled(dp, fake)[0]
        return bce_d_loss(p_fake, critic(dp, real)[0])

    g_gen, g_d = jax.grad(one_stage, argnums=(0, 1))(gv["params"], dv)
    # Two-stage: each player's own loss, the other player fixed.
    ref_d = jax.grad(lambda dp: bce_d_loss(D.apply(dp, _gen(G, gv, gv["params"], z)), D.apply(dp, real)))(dv)
    ref_gen = jax.grad(lambda gp: generator_loss(D.apply(dv, _gen(G, gv, gp, z)), kind))(gv["params"])
    _close(g_d, ref_d)
    _close(g_gen, ref_gen, tol=1e-4)
    assert any(float(jnp.abs(x).max()) > 0 for x in jax.tree.leaves(g_gen))


def test_kd_based_reversal_matches_zskt_generator_loss():
    """ZSKT's one-stage student loss, reversed, is exactly the gradient of −kd for the generator."""
    G, S, z, gv, sv, _ = _tiny_players()
    W = jax.random.normal(jax.random.PRNGKey(7), (64, 3))

    def logits(x):  # a fixed differentiable "teacher" and a student sharing G's images
        return x.reshape(x.shape[0], -1) @ W

    def loss(gp, sp, reverse):
        x = _gen(G, gv, gp, z)
        x = adversarial.reverse_gradient(x) if reverse else x
        s = jnp.stack([S.apply(sp, x)] * 3, -1)
        return losses.kd(s, logits(x), 1.0)

    g_gen, _ = jax.grad(loss, argnums=(0, 1))(gv["params"], sv, True)
    ref = jax.grad(lambda gp: -loss(gp, sv, False))(gv["params"])
    _close(g_gen, ref)
