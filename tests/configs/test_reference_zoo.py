"""The CIFAR-100 distillation zoo config holds its reference code's settings: every value in
jka/configs/distill/cifar100_reference.toml (KamalEngine's run behind the published table) equals the
built config's, with the line it comes from, for every method; and each term compares the stages the
reference compares."""
import jax
import jax.numpy as jnp
import pytest

from jka import models, run
from jka.methods.distill import terms
from jka.methods.distill.zoo import select_stages
from tests.configs.reference import assert_every_row_cited, config_values, load_table, values

ZOO = load_table("distill", "cifar100_reference.toml")
ZOO_METHODS = [m for m in ZOO if m not in ("harness", "stages")]


def test_every_row_has_a_value_and_a_source():
    assert sorted(ZOO_METHODS) == sorted(["kd", "hint", "at", "sp", "cc", "vid", "rkd", "pkt", "nst", "svd"])
    assert sorted(ZOO["stages"]) == sorted(ZOO_METHODS)
    assert_every_row_cited(ZOO)


@pytest.mark.parametrize("method", ZOO_METHODS)
def test_zoo_config_equals_the_reference(method):
    cfg = run.load(f"distill/cifar100:method={method}")
    expected = values(ZOO["harness"], ZOO[method])
    assert config_values(cfg, expected) == expected


@pytest.fixture(scope="module")
def wrn_features():
    """Feature names and shapes of jka's WRN-16-2 and WRN-40-2 on a CIFAR image (shapes only, nothing run)."""
    x = jnp.zeros((2, 32, 32, 3), jnp.float32)
    out = []
    for name in ("wrn16_2", "wrn40_2"):
        net = models.create(name, 100)
        variables = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), x, train=False))
        out.append(jax.eval_shape(lambda v: net.apply(v, x, train=False), variables)[1])
    return out


@pytest.mark.parametrize("method", ZOO_METHODS)
def test_zoo_compares_the_reference_features(method, wrn_features):
    s_names, t_names = select_stages(terms.get(method).where, *wrn_features)
    assert s_names == t_names == ZOO["stages"][method]["value"]
