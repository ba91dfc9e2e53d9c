"""The CIFAR distillation configs hold their reference code's settings. Every value in
configs/distill/cifar100_reference.toml (the zoo, KamalEngine), cifar100_ffl_reference.toml (FFL-pytorch)
and cifar_netgraft_reference.toml (NetGraft) equals the built config's, with the line it comes from.
The zoo is checked for every method and FFL for the learning rate at its decay steps. NetGraft is
checked for both datasets and for its default batch per N."""
import os

import jax
import jax.numpy as jnp
import pytest

from jka import config, models
from jka.algorithms.distill.netgraft import default_batch_size
from jka.algorithms.distill.zoo import select_stages
from jka.losses import distill as terms
from jka.train.state import make_schedule
from tests.conftest import REPO
from tests.recipes.reference import assert_every_row_cited, config_values, load_table, values

ZOO, FFL, NETGRAFT = (load_table("distill", f"{n}_reference.toml")
                      for n in ("cifar100", "cifar100_ffl", "cifar_netgraft"))
ZOO_METHODS = [m for m in ZOO if m not in ("harness", "stages")]


def _check(cfg, expected):
    assert config_values(cfg, expected) == expected


def test_every_row_has_a_value_and_a_source():
    assert sorted(ZOO_METHODS) == sorted(["kd", "hint", "at", "sp", "cc", "vid", "rkd", "pkt", "nst", "svd"])
    assert sorted(ZOO["stages"]) == sorted(ZOO_METHODS)
    for table in (ZOO, FFL, NETGRAFT):
        assert_every_row_cited(table)


@pytest.mark.parametrize("method", ZOO_METHODS)
def test_zoo_config_equals_the_reference(method):
    cfg = config.load(os.path.join(REPO, f"configs/distill/cifar100.py:method={method}"), [])
    _check(cfg, values(ZOO["harness"], ZOO[method]))


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


def test_ffl_config_equals_the_reference():
    cfg = config.load(os.path.join(REPO, "configs/distill/cifar100_ffl.py"), [])
    _check(cfg, values(FFL["ffl"]))


def test_ffl_learning_rate_drops_at_the_reference_steps():
    cfg = config.load(os.path.join(REPO, "configs/distill/cifar100_ffl.py"), [])
    schedule = make_schedule(cfg.optim, int(cfg.train.steps))
    got = {step: float(schedule(int(step))) for step in FFL["ffl_lr"]}
    assert got == pytest.approx(values(FFL["ffl_lr"]), rel=1e-6)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_netgraft_config_equals_the_reference(dataset):
    cfg = config.load(os.path.join(REPO, f"configs/distill/cifar_netgraft.py:dataset={dataset}"), [])
    _check(cfg, values(NETGRAFT["harness"], NETGRAFT[dataset]))
    assert cfg.netgraft.batch_size is None  # the default below applies


def test_netgraft_default_batch_is_the_reference_one():
    got = {n: default_batch_size(int(n)) for n in NETGRAFT["netgraft_batch"]}
    assert got == values(NETGRAFT["netgraft_batch"])
