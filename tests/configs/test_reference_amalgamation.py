"""The amalgamation reproduction configs hold the reference code's settings: every value listed in
jka/configs/amalgamation/cars_aircraft_reference.toml and nyuv2_reference.toml (read from
zju-vipa/KamalEngine, with the line each comes from) equals the built config's, for both Cars +
Aircraft methods, the NYUv2 branching student and both of its teachers."""
import importlib

import pytest

from jka import run
from tests.configs.reference import assert_every_row_cited, config_values, load_table, values

CARS = load_table("amalgamation", "cars_aircraft_reference.toml")
NYUV2 = load_table("amalgamation", "nyuv2_reference.toml")
CARS_METHODS = ("layerwise", "cfl")
NYUV2_TEACHERS = ("teacher_seg", "teacher_depth")  # teachers[0], teachers[1]


def cars_config(method, overrides=()):
    return run.load(f"amalgamation/cars_aircraft:method={method}", list(overrides))


def test_every_section_is_there_and_every_row_has_a_source():
    assert sorted(CARS) == sorted(["shared", *CARS_METHODS, "code"])
    assert sorted(NYUV2) == sorted(["student", "teachers", *NYUV2_TEACHERS])
    for table in (CARS, NYUV2):
        assert_every_row_cited(table)


@pytest.mark.parametrize("method", CARS_METHODS)
def test_cars_aircraft_config_equals_the_reference_scripts(method):
    want = values(CARS["shared"], CARS[method])
    assert config_values(cars_config(method), want) == want


def test_a_drifted_value_fails_the_comparison():
    want = values(CARS["shared"], CARS["cfl"])
    drifted = config_values(cars_config("cfl", ["optim.lr=1e-4"]), want)
    assert drifted != want and {k for k in want if drifted[k] != want[k]} == {"optim.lr"}


def test_constants_fixed_in_jka_code_equal_the_reference():
    for dotted, row in CARS["code"].items():
        module, _, name = dotted.rpartition(".")
        value = getattr(importlib.import_module(module), name)
        assert (list(value) if isinstance(value, tuple) else value) == row["value"], dotted


def test_nyuv2_config_and_its_teachers_equal_the_reference_scripts():
    cfg = run.load("amalgamation/nyuv2")
    want = values(NYUV2["student"])
    assert config_values(cfg, want) == want
    assert len(cfg.teachers) == len(NYUV2_TEACHERS)
    for spec, section in zip(cfg.teachers, NYUV2_TEACHERS):
        want = values(NYUV2["teachers"], NYUV2[section])
        assert config_values(spec["config"], want) == want, section
