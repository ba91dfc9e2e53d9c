"""Generator and discriminator shapes, output range and errors."""
import jax
import jax.numpy as jnp
import pytest

from jka.errors import ConfigError
from jka.models.generators import DCGANDiscriminator, Generator, LargeGenerator, create_generator


@pytest.mark.parametrize("name,size,nc", [("generator", 8, 1), ("large", 8, 1), ("dcgan", 8, 1),
                                          ("generator", 32, 3), ("dcgan", 16, 3)])
def test_generators_shape_and_range(name, size, nc):
    g = create_generator(name, nz=16, ngf=8, img_size=size, nc=nc)
    z = jax.random.normal(jax.random.PRNGKey(0), (3, 16))
    v = g.init(jax.random.PRNGKey(1), z, train=False)
    x, _ = g.apply(v, z, train=True, mutable=["batch_stats"])
    assert x.shape == (3, size, size, nc)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_defaults_match_spec():
    g = Generator()
    assert (g.nz, g.ngf, g.img_size, g.nc) == (256, 64, 32, 3)
    v = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((2, 256)), train=False))
    assert v["params"]["l1"]["kernel"].shape == (256, 4 * 64 * 8 * 8)
    assert v["params"]["conv1"]["kernel"].shape == (3, 3, 256, 128)
    v = jax.eval_shape(lambda: LargeGenerator().init(jax.random.PRNGKey(0), jnp.zeros((2, 256)), train=False))
    assert v["params"]["l1"]["kernel"].shape == (256, 8 * 64 * 8 * 8)


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_discriminator_one_logit_per_image(norm):
    d = DCGANDiscriminator(ndf=8, img_size=8, norm=norm)
    x = jnp.zeros((4, 8, 8, 1))
    v = d.init(jax.random.PRNGKey(0), x, train=False)
    p, _ = d.apply(v, x, train=True, mutable=["batch_stats"])
    assert p.shape == (4,)
    assert ("batch_stats" in v) == (norm == "batch")


def test_bad_sizes_raise_config_errors():
    with pytest.raises(ConfigError):
        create_generator("nope")
    with pytest.raises(ConfigError):
        DCGANDiscriminator(img_size=12).init(jax.random.PRNGKey(0), jnp.zeros((1, 12, 12, 1)))
