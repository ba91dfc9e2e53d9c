"""The CIFAR-10 data-free configs hold the reference code's settings: every value listed in
jka/configs/datafree/cifar10_reference.toml (read from zju-vipa/CMI and the DFAD repository, with the
line each comes from) equals the built config's, for every method and every teacher-student pair."""
import pytest

from jka import run
from jka.configs.datafree.cifar10 import PAIRS
from tests.configs.reference import assert_every_row_cited, config_values, load_table, values

REFERENCE = load_table("datafree", "cifar10_reference.toml")
HARNESS = ("dafl", "zskt", "dfq", "deepinversion", "cmi")  # run through the CMI harness
METHODS = [m for m in REFERENCE if m != "harness"]


def expected(method: str) -> dict:
    return values(REFERENCE["harness"] if method in HARNESS else {}, REFERENCE[method])


def test_every_method_of_the_config_has_its_reference_and_every_row_a_source():
    assert sorted(METHODS) == sorted(["dafl", "zskt", "dfad", "dfq", "deepinversion", "cmi"])
    assert_every_row_cited(REFERENCE)


def test_each_method_section_is_named_after_the_method():
    for method in METHODS:
        assert all(key.split(".")[0] in ("optim", "data", "train", method) for key in REFERENCE[method]), method


@pytest.mark.parametrize("pair", sorted(PAIRS))
@pytest.mark.parametrize("method", METHODS)
def test_config_equals_the_reference_scripts(method, pair):
    cfg = run.load(f"datafree/cifar10:method={method},pair={pair}")
    assert config_values(cfg, expected(method)) == expected(method)
