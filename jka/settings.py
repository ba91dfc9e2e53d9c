"""Typed settings: a config section described by a frozen dataclass whose fields' defaults are the
one source of truth, read and checked as a whole.

    @dataclasses.dataclass(frozen=True)
    class KD:
        T: float = setting(4.0, number(0, low_open=True), "temperature of the kd term")
        alpha: float = setting(1.0, number(0), "weight of kd(s, t, T)")

    s = read(KD, cfg.get("kd"), "kd")   # a KD instance, or one ConfigError naming the key

A field's value must fit its rule (:class:`Rule`: type and range, or a choice), else be of its
default's type (:func:`jka.config.fits`); a field whose default is a settings dataclass is a nested
section read the same way; a key the dataclass does not declare is refused. :func:`defaults` gives
the section as plain dicts, which is how a config is completed before overrides apply.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Callable, NamedTuple

import ml_collections

from jka.config import brief, fits
from jka.errors import ConfigError, unknown_choice


class Rule(NamedTuple):
    ok: Callable[[Any], bool]
    must: str             # what a valid value is: "an int >= 1"
    kind: str = ""        # a name: what it names ("optimizer"); the message lists the choices
    choices: tuple = ()


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # True is an int in Python


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_dict(v) -> bool:
    return isinstance(v, (dict, ml_collections.ConfigDict))


def integer(low: int, *also: int, high: int | None = None) -> Rule:
    """An int >= ``low`` (and <= ``high``), or one of ``also``."""
    def ok(v):
        return is_int(v) and ((v >= low and (high is None or v <= high)) or v in also)
    top = "" if high is None else f" and <= {high}"
    return Rule(ok, f"an int >= {low}{top}" + "".join(f" or {a}" for a in also))


def number(low: float = -math.inf, high: float = math.inf, low_open: bool = False, high_open: bool = False) -> Rule:
    """A finite number from ``low`` to ``high`` (``*_open``: that end excluded)."""
    def ok(v):
        return is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    ends = []
    if low > -math.inf:
        ends.append(f"{'>' if low_open else '>='} {low:g}")
    if high < math.inf:
        ends.append(f"{'<' if high_open else '<='} {high:g}")
    return Rule(ok, "a finite number" + (" " + " and ".join(ends) if ends else ""))


def choice(kind: str, names) -> Rule:
    names = tuple(names)
    return Rule(lambda v: isinstance(v, str) and v in names, "", kind, names)


def optional(rule: Rule, none: str = "None") -> Rule:
    return Rule(lambda v: v is None or rule.ok(v), f"{none} or {rule.must}", rule.kind, rule.choices)


def sequence(item: Rule, length: int | None = None, what: str = "") -> Rule:
    """A list (or tuple) of items that fit ``item`` (``length`` of them when given)."""
    def ok(v):
        return (isinstance(v, (list, tuple)) and (length is None or len(v) == length)
                and all(item.ok(x) for x in v))
    n = f"{length} " if length is not None else ""
    return Rule(ok, what or f"a list of {n}items, each {item.must or 'one of ' + ', '.join(item.choices)}")


BOOL = Rule(lambda v: isinstance(v, bool), "True or False")
TEXT = Rule(lambda v: isinstance(v, str) and v != "", "a non-empty string")
ANY = Rule(lambda v: True, "anything")


def setting(default, rule: Rule | None = None, doc: str = "") -> Any:
    """A field of a settings dataclass: its default, the rule a value must fit and what it means."""
    meta = {"rule": rule, "doc": doc}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _plain(value):
    """A config value as plain Python (ConfigDicts as dicts, tuples kept)."""
    return value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def read(cls, given, where: str):
    """``given`` (a dict, a ConfigDict or None) as an instance of the settings dataclass ``cls``:
    missing keys take their defaults, a key ``cls`` does not declare or a value that does not fit
    its rule is one :class:`ConfigError` naming ``where.key``."""
    given = {} if given is None else dict(_plain(given)) if is_dict(given) else given
    if not isinstance(given, dict):
        raise ConfigError(f"{where} must be a section (a dict of settings), not {brief(given)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(given) - set(fields))
    if unknown:
        held = f"{where} holds" if where else "a config holds"
        raise ConfigError(f"{_key(where, unknown[0])} is not a setting ({held} {', '.join(sorted(fields))}); "
                          "remove it or fix its name")
    values = {}
    for name, f in fields.items():
        default, key = _default(f), _key(where, name)
        value = given.get(name, default)
        if dataclasses.is_dataclass(default):  # a nested section: its given keys over the default's
            value = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
            base = dataclasses.asdict(default)
            values[name] = read(type(default), {**base, **_plain(value)} if is_dict(value) else value, key)
            continue
        like = "finite number" if isinstance(default, float) else type(default).__name__
        rule = f.metadata.get("rule") or Rule(lambda v: fits(v, default), f"a {like} like its default {default!r}")
        if not rule.ok(value):
            reason = str(unknown_choice(rule.kind, value, rule.choices)) if rule.kind else f"it must be {rule.must}"
            raise ConfigError(f"{key}={brief(value)} is not valid: {reason}; fix it in the config or override {key}=...")
        values[name] = tuple(value) if isinstance(default, tuple) and isinstance(value, list) else value
    return cls(**values)


def defaults(cls) -> dict:
    """The section of ``cls`` with every default, as plain dicts (nested sections too)."""
    values = {f.name: _default(f) for f in dataclasses.fields(cls)}
    return {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in values.items()}
