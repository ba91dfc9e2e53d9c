"""The FFL and NetGraft CIFAR configs hold their reference code's settings: every value in
jka/configs/distill/cifar100_ffl_reference.toml (FFL-pytorch) and cifar_netgraft_reference.toml
(NetGraft) equals the built config's, with the line it comes from. FFL is checked for the learning
rate at its decay steps, NetGraft for both datasets and for its default batch per N."""
import pytest

from jka import run
from jka.methods.distill.netgraft import default_batch_size
from jka.train.state import make_schedule
from tests.configs.reference import assert_every_row_cited, config_values, load_table, values

FFL, NETGRAFT = (load_table("distill", f"{n}_reference.toml") for n in ("cifar100_ffl", "cifar_netgraft"))


def _check(cfg, expected):
    assert config_values(cfg, expected) == expected


def test_every_row_has_a_value_and_a_source():
    for table in (FFL, NETGRAFT):
        assert_every_row_cited(table)


def test_ffl_config_equals_the_reference():
    _check(run.load("distill/cifar100_ffl"), values(FFL["ffl"]))


def test_ffl_learning_rate_drops_at_the_reference_steps():
    cfg = run.load("distill/cifar100_ffl")
    schedule = make_schedule(cfg.optim, int(cfg.train.steps))
    got = {step: float(schedule(int(step))) for step in FFL["ffl_lr"]}
    assert got == pytest.approx(values(FFL["ffl_lr"]), rel=1e-6)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_netgraft_config_equals_the_reference(dataset):
    cfg = run.load(f"distill/cifar_netgraft:dataset={dataset}")
    _check(cfg, values(NETGRAFT["harness"], NETGRAFT[dataset]))
    assert cfg.netgraft.batch_size is None  # the default below applies


def test_netgraft_default_batch_is_the_reference_one():
    got = {n: default_batch_size(int(n)) for n in NETGRAFT["netgraft_batch"]}
    assert got == values(NETGRAFT["netgraft_batch"])
