"""Configs are Python files with ``get_config(**args) -> ml_collections.ConfigDict``: a path, or the
name of a config shipped inside jka (``jka/configs/<family>/<name>.py``: ``digits/kd``; :func:`shipped`
lists them).

``path.py:key=value,key=value`` (or ``name:key=value``) passes arguments to ``get_config`` (a family file's variants, e.g.
``configs/datafree/cifar10.py:method=cmi,pair=wrn40_2_wrn16_1``; ``path.py:value`` sets the first
one); values are Python literals or plain words. Overrides on the command line are ``dotted.key=value`` (``train.steps=500``,
``teachers.0.classes=[0,1,2]``, ``optim.name=adam``) and must name keys that exist.
"""
from __future__ import annotations

import ast
import copy
import importlib.util
import inspect
import math
import os
import traceback
from typing import Sequence

import ml_collections

from jka.errors import ConfigError, UserError


def _parse(value: str):
    if value.lower() in ("nan", "inf", "+inf", "-inf"):
        return float(value)  # so the check refuses it as a number out of range, not as a word
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def parse_args(text: str) -> dict:
    """``'method=cmi,pair=wrn40_2_wrn16_1'`` → ``{'method': 'cmi', 'pair': 'wrn40_2_wrn16_1'}``."""
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in item:
            raise ConfigError(f"config argument {item!r} is not key=value (e.g. file.py:method=cmi,pair=...)")
        key, value = item.split("=", 1)
        out[key.strip()] = _parse(value.strip())
    return out


def _code_error(path: str, err: Exception) -> ConfigError:
    """One line for an exception raised while a config file runs: where (the file's line, else the
    innermost one) and what."""
    if isinstance(err, SyntaxError):
        filename, line, what = err.filename, err.lineno, f"SyntaxError: {err.msg}"
    else:
        frames = traceback.extract_tb(err.__traceback__)
        mine = [f for f in frames if os.path.abspath(f.filename) == os.path.abspath(path)] or frames
        filename, line, what = mine[-1].filename, mine[-1].lineno, f"{type(err).__name__}: {err}"
    same = filename and os.path.abspath(filename) == os.path.abspath(path)
    where = f"{path}:{line}" if same else f"{path} (at {filename}:{line})"
    return ConfigError(f"config file {where} failed: {' '.join(what.split())[:300]}; fix the file")


def _run(path: str, fn):
    """``fn()``, which runs code of the config file ``path``: its errors become one ConfigError (a
    UserError it raises on purpose passes as it is)."""
    try:
        return fn()
    except UserError:
        raise
    except Exception as err:  # anything the file's code raises is the file's fault
        raise _code_error(path, err) from None


CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def config_path(name: str) -> str:
    """The file of config ``name``: a file path, else the shipped ``jka/configs/<name>.py`` (also for an
    old-style ``configs/<name>.py``)."""
    if os.path.isfile(name):
        return name
    stem = name[:-3] if name.endswith(".py") else name
    stem = stem[len("configs/"):] if stem.startswith("configs/") else stem
    shipped_file = os.path.join(CONFIG_DIR, *stem.split("/")) + ".py"
    if stem and not stem.startswith(("/", ".")) and os.path.isfile(shipped_file):
        return shipped_file
    raise ConfigError(f"config {name!r} is neither a file nor a config shipped with jka; `jka configs` lists "
                      "the shipped ones (e.g. digits/kd), or pass the path of a .py config")


def shipped() -> list[dict]:
    """Every config shipped with jka: ``name``, ``args`` (``get_config``'s arguments with their
    defaults), ``variants`` (the values an argument takes, from the module's ``CHOICES`` dict, for
    the arguments whose values form a closed set) and ``doc``, the first line of its docstring."""
    out = []
    for root, _, files in sorted(os.walk(CONFIG_DIR)):
        for f in sorted(files):
            if not f.endswith(".py") or f.startswith("_") or f == "common.py":
                continue
            path = os.path.join(root, f)
            name = os.path.relpath(path, CONFIG_DIR)[:-3].replace(os.sep, "/")
            module = _module(path)
            params = inspect.signature(module.get_config).parameters
            out.append({"name": name, "args": {p.name: p.default for p in params.values()},
                        "variants": {k: list(v) for k, v in getattr(module, "CHOICES", {}).items()},
                        "doc": (module.__doc__ or "").strip().split("\n")[0]})
    return out


def _module(path: str):
    spec = importlib.util.spec_from_file_location(f"jka_config_{abs(hash(os.path.abspath(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    _run(path, lambda: spec.loader.exec_module(module))
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"config file {path!r} has no get_config() function")
    return module


def load_config_file(path: str) -> ml_collections.ConfigDict:
    """``path`` or ``path:key=value,...`` (the arguments go to ``get_config``); ``path`` a file or a
    shipped config's name (:func:`config_path`)."""
    text = None
    if ":" in os.path.basename(path):
        path, text = path.rsplit(":", 1)
    path = config_path(path)
    module = _module(path)
    params = inspect.signature(module.get_config).parameters
    args = {}
    if text and "=" not in text and params:  # file.py:value is the first argument
        args = {next(iter(params)): _parse(text)}
    elif text:
        args = parse_args(text)
    unknown = sorted(set(args) - set(params))
    if unknown:
        valid = ", ".join(f"{p.name}={p.default!r}" for p in params.values()) or "none"
        raise ConfigError(f"config {path!r} has no argument {', '.join(unknown)}; its arguments: {valid}")
    cfg = _run(path, lambda: module.get_config(**args))
    if isinstance(cfg, dict):
        cfg = _run(path, lambda: ml_collections.ConfigDict(cfg))
    if not isinstance(cfg, ml_collections.ConfigDict):
        raise ConfigError(f"get_config() of {path!r} returned {type(cfg).__name__} {brief(cfg)}; it must "
                          "return an ml_collections.ConfigDict (or a dict), e.g. `return base_config()`")
    return cfg


def brief(value, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (for one-line messages)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _child(node, key: str, path: str):
    if isinstance(node, (list, tuple)):
        if not key.isdigit() or int(key) >= len(node):
            raise ConfigError(f"unknown config key {path!r}: the list has {len(node)} entries")
        return node[int(key)]
    if key not in node:
        raise ConfigError(f"unknown config key {path!r}; valid keys here: {', '.join(sorted(node.keys()))}")
    return node[key]


def set_value(cfg, path: str, value):
    """Set the existing key ``path`` (dotted; list entries by index) of ``cfg`` to ``value``."""
    keys = path.split(".")
    node = cfg
    for i, k in enumerate(keys[:-1]):
        node = _child(node, k, ".".join(keys[: i + 1]))
    last = keys[-1]
    _child(node, last, path)  # must exist
    if isinstance(node, list):
        node[int(last)] = value
        return
    old = node[last]
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(old, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(value, bool) and isinstance(old, (int, float)) and not isinstance(old, bool):
        _refuse_type(path, value, old)  # ConfigDict would turn True into 1.0
    try:
        node[last] = value
    except TypeError:
        _refuse_type(path, value, old)


def _refuse_type(path: str, value, old):
    kind = type(old).__name__
    raise ConfigError(f"{path}={brief(value)} has type {type(value).__name__}, but {path} holds values of "
                      f"type {kind} (now {brief(old)}); give a value of type {kind}") from None


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Sequence[str]) -> ml_collections.ConfigDict:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (e.g. train.steps=100)")
        path, raw = item.split("=", 1)
        set_value(cfg, path, _parse(raw))
    return cfg


def derive(cfg, **changes):
    """A deep copy of ``cfg`` with ``changes`` applied (``derive(cfg, **{"train.steps": 10})``);
    how a job makes the config of each of its phases."""
    out = copy.deepcopy(cfg)
    for path, value in changes.items():
        set_value(out, path, value)
    return out


def fits(value, default) -> bool:
    """Whether ``value`` may replace ``default``: of its type (an int where a float is expected, a
    list for a tuple; any value where the default is None), and a number finite."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        kinds = (int, float) if isinstance(default, float) else int
        return isinstance(value, kinds) and math.isfinite(value)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    if isinstance(default, dict):
        return isinstance(value, (dict, ml_collections.ConfigDict))
    return isinstance(value, type(default))
