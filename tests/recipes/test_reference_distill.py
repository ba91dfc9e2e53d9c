"""The CIFAR distillation configs hold their reference code's settings. Every value in
configs/distill/cifar100_reference.toml (the zoo, KamalEngine), cifar100_ffl_reference.toml (FFL-pytorch)
and cifar_netgraft_reference.toml (NetGraft) equals the built config's, with the line it comes from.
The zoo is checked for every method and FFL for the learning rate at its decay steps. NetGraft is
checked for both datasets and for its default batch per N."""
import os
import tomllib

import jax
import jax.numpy as jnp
import pytest

from jka import config, models
from jka.algorithms.distill.netgraft import default_batch_size
from jka.algorithms.distill.zoo import select_stages
from jka.losses import distill as terms
from jka.train.state import make_schedule
from tests.conftest import REPO


def _table(name):
    return tomllib.load(open(os.path.join(REPO, "configs", "distill", name), "rb"))


ZOO, FFL, NETGRAFT = (_table(f"{n}_reference.toml") for n in ("cifar100", "cifar100_ffl", "cifar_netgraft"))
ZOO_METHODS = [m for m in ZOO if m not in ("harness", "stages")]


def _get(cfg, dotted):
    value = cfg
    for part in dotted.split("."):
        if isinstance(value, (list, tuple)):
            assert part.isdigit() and int(part) < len(value), f"the config has no {dotted}"
            value = value[int(part)]
        else:
            assert part in value, f"the config has no {dotted}"
            value = value[part]
    return list(value) if isinstance(value, tuple) else value


def _values(*sections):
    return {key: row["value"] for section in sections for key, row in section.items()}


def _check(cfg, expected):
    got = {key: _get(cfg, key) for key in expected}
    assert got == expected


def test_every_row_has_a_value_and_a_source():
    assert sorted(ZOO_METHODS) == sorted(["kd", "hint", "at", "sp", "cc", "vid", "rkd", "pkt", "nst", "svd"])
    assert sorted(ZOO["stages"]) == sorted(ZOO_METHODS)
    for table in (ZOO, FFL, NETGRAFT):
        for name, section in table.items():
            assert section, name
            for key, row in section.items():
                assert set(row) == {"value", "from"} and row["from"].strip(), f"{name}: {key}"


@pytest.mark.parametrize("method", ZOO_METHODS)
def test_zoo_config_equals_the_reference(method):
    cfg = config.load(os.path.join(REPO, f"configs/distill/cifar100.py:method={method}"), [])
    _check(cfg, _values(ZOO["harness"], ZOO[method]))


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
    _check(cfg, _values(FFL["ffl"]))


def test_ffl_learning_rate_drops_at_the_reference_steps():
    cfg = config.load(os.path.join(REPO, "configs/distill/cifar100_ffl.py"), [])
    schedule = make_schedule(cfg.optim, int(cfg.train.steps))
    got = {step: float(schedule(int(step))) for step in FFL["ffl_lr"]}
    assert got == pytest.approx(_values(FFL["ffl_lr"]), rel=1e-6)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_netgraft_config_equals_the_reference(dataset):
    cfg = config.load(os.path.join(REPO, f"configs/distill/cifar_netgraft.py:dataset={dataset}"), [])
    _check(cfg, _values(NETGRAFT["harness"], NETGRAFT[dataset]))
    assert cfg.netgraft.batch_size is None  # the default below applies


def test_netgraft_default_batch_is_the_reference_one():
    got = {n: default_batch_size(int(n)) for n in NETGRAFT["netgraft_batch"]}
    assert got == _values(NETGRAFT["netgraft_batch"])
