"""Reading the reference tables (jka/configs/**/*_reference.toml) and the config values they describe.

A table's section maps a dotted config key to ``{value, from}``: the reference's value and where it
is written. The tests/configs/test_reference_*.py files build a config and compare."""
import os
import tomllib

from tests.conftest import REPO


def load_table(*parts) -> dict:
    """The TOML table at ``REPO/jka/configs/<parts>``."""
    with open(os.path.join(REPO, "jka", "configs", *parts), "rb") as f:
        return tomllib.load(f)


def values(*sections) -> dict:
    """``{dotted key: reference value}`` of the sections, later ones overriding earlier ones."""
    return {key: row["value"] for section in sections for key, row in section.items()}


def config_value(cfg, dotted: str):
    """The config's value at ``dotted`` (list entries by index); tuples as lists, as TOML has them."""
    value = cfg
    for part in dotted.split("."):
        if isinstance(value, (list, tuple)):
            assert part.isdigit() and int(part) < len(value), f"the config has no {dotted}"
            value = value[int(part)]
        else:
            assert part in value, f"the config has no {dotted}"
            value = value[part]
    return list(value) if isinstance(value, tuple) else value


def config_values(cfg, keys) -> dict:
    return {key: config_value(cfg, key) for key in keys}


def assert_every_row_cited(table: dict) -> None:
    """Every section has rows, and every row is a value with a non-empty source."""
    for name, section in table.items():
        assert section, name
        for key, row in section.items():
            assert set(row) == {"value", "from"} and row["from"].strip(), f"{name}: {key}"
