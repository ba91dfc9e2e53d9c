"""The amalgamation reproduction configs hold the reference code's settings: every value listed in
configs/amalgamation/cars_aircraft_reference.toml and nyuv2_reference.toml (read from
zju-vipa/KamalEngine, with the line each comes from) equals the built config's, for both Cars +
Aircraft methods, the NYUv2 branching student and both of its teachers."""
import importlib
import os
import tomllib

import pytest

from jka import config
from tests.conftest import REPO

CARS = tomllib.load(open(os.path.join(REPO, "configs", "amalgamation", "cars_aircraft_reference.toml"), "rb"))
NYUV2 = tomllib.load(open(os.path.join(REPO, "configs", "amalgamation", "nyuv2_reference.toml"), "rb"))
CARS_METHODS = ("layerwise", "cfl")
NYUV2_TEACHERS = ("teacher_seg", "teacher_depth")  # teachers[0], teachers[1]


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


def expected(*sections) -> dict:
    return {key: row["value"] for section in sections for key, row in section.items()}


def got(cfg, want: dict) -> dict:
    return {key: _get(cfg, key) for key in want}


def cars_config(method, overrides=()):
    return config.load(os.path.join(REPO, f"configs/amalgamation/cars_aircraft.py:method={method}"), list(overrides))


def test_every_section_is_there_and_every_row_has_a_source():
    assert sorted(CARS) == sorted(["shared", *CARS_METHODS, "code"])
    assert sorted(NYUV2) == sorted(["student", "teachers", *NYUV2_TEACHERS])
    for table in (CARS, NYUV2):
        for section in table.values():
            assert section
            for key, row in section.items():
                assert set(row) == {"value", "from"} and row["from"].strip(), key


@pytest.mark.parametrize("method", CARS_METHODS)
def test_cars_aircraft_config_equals_the_reference_scripts(method):
    want = expected(CARS["shared"], CARS[method])
    assert got(cars_config(method), want) == want


def test_a_drifted_value_fails_the_comparison():
    want = expected(CARS["shared"], CARS["cfl"])
    drifted = got(cars_config("cfl", ["optim.lr=1e-4"]), want)
    assert drifted != want and {k for k in want if drifted[k] != want[k]} == {"optim.lr"}


def test_constants_fixed_in_jka_code_equal_the_reference():
    for dotted, row in CARS["code"].items():
        module, _, name = dotted.rpartition(".")
        value = getattr(importlib.import_module(module), name)
        assert (list(value) if isinstance(value, tuple) else value) == row["value"], dotted


def test_nyuv2_config_and_its_teachers_equal_the_reference_scripts():
    cfg = config.load(os.path.join(REPO, "configs", "amalgamation", "nyuv2.py"), [])
    want = expected(NYUV2["student"])
    assert got(cfg, want) == want
    assert len(cfg.teachers) == len(NYUV2_TEACHERS)
    for spec, section in zip(cfg.teachers, NYUV2_TEACHERS):
        want = expected(NYUV2["teachers"], NYUV2[section])
        assert got(spec["config"], want) == want, section
