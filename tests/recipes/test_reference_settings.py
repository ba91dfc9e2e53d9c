"""The CIFAR-10 data-free configs hold the reference code's settings: every value listed in
configs/datafree/cifar10_reference.toml (read from zju-vipa/CMI and the DFAD repository, with the
line each comes from) equals the built config's, for every method and every teacher-student pair."""
import os
import tomllib

import pytest

from jka import config
from jka.recipes.datafree import CIFAR10_PAIRS
from tests.conftest import REPO

TABLE = os.path.join(REPO, "configs", "datafree", "cifar10_reference.toml")
REFERENCE = tomllib.load(open(TABLE, "rb"))
HARNESS = ("dafl", "zskt", "dfq", "deepinversion", "cmi")  # run through the CMI harness
METHODS = [m for m in REFERENCE if m != "harness"]


def _get(cfg, dotted):
    value = cfg
    for part in dotted.split("."):
        assert part in value, f"the config has no {dotted}"
        value = value[part]
    return list(value) if isinstance(value, tuple) else value


def expected(method: str) -> dict:
    rows = {**(REFERENCE["harness"] if method in HARNESS else {}), **REFERENCE[method]}
    return {key: row["value"] for key, row in rows.items()}


def test_every_method_of_the_config_has_its_reference_and_every_row_a_source():
    assert sorted(METHODS) == sorted(["dafl", "zskt", "dfad", "dfq", "deepinversion", "cmi"])
    for section in REFERENCE.values():
        for key, row in section.items():
            assert set(row) == {"value", "from"} and row["from"].strip(), key


@pytest.mark.parametrize("pair", sorted(CIFAR10_PAIRS))
@pytest.mark.parametrize("method", METHODS)
def test_config_equals_the_reference_scripts(method, pair):
    cfg = config.load(os.path.join(REPO, f"configs/datafree/cifar10.py:method={method},pair={pair}"), [])
    got = {key: _get(cfg, key) for key in expected(method)}
    assert got == expected(method)
