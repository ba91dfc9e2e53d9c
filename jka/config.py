"""Configs are Python files with ``get_config() -> ml_collections.ConfigDict``.

Overrides on the command line are ``dotted.key=value``; values are parsed as Python literals
(``train.steps=500``, ``teachers.0.classes=[0,1,2]``, ``optim.name=adam``) and must name keys
that exist.
"""
from __future__ import annotations

import ast
import importlib.util
import os
from typing import Sequence

import ml_collections

from jka.errors import ConfigError


def load_config_file(path: str) -> ml_collections.ConfigDict:
    """``path`` or ``path:arg`` (the arg is passed to ``get_config``)."""
    arg = None
    if ":" in os.path.basename(path):
        path, arg = path.rsplit(":", 1)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist; pass the path of a .py config (see configs/)")
    spec = importlib.util.spec_from_file_location(f"jka_config_{abs(hash(os.path.abspath(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path!r} has no get_config() function")
    cfg = module.get_config(arg) if arg is not None else module.get_config()
    if not isinstance(cfg, ml_collections.ConfigDict):
        cfg = ml_collections.ConfigDict(cfg)
    return cfg


def _parse(value: str):
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _child(node, key: str, path: str):
    if isinstance(node, (list, tuple)):
        if not key.isdigit() or int(key) >= len(node):
            raise ConfigError(f"unknown config key {path!r}: the list has {len(node)} entries")
        return node[int(key)]
    if key not in node:
        raise ConfigError(f"unknown config key {path!r}; valid keys here: {', '.join(sorted(node.keys()))}")
    return node[key]


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Sequence[str]) -> ml_collections.ConfigDict:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (e.g. train.steps=100)")
        path, raw = item.split("=", 1)
        keys = path.split(".")
        node = cfg
        for i, k in enumerate(keys[:-1]):
            node = _child(node, k, ".".join(keys[: i + 1]))
        last = keys[-1]
        _child(node, last, path)  # must exist
        value = _parse(raw)
        if isinstance(node, list):
            node[int(last)] = value
            continue
        old = node[last]
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(old, tuple) and isinstance(value, list):
            value = tuple(value)
        try:
            node[last] = value
        except TypeError as err:
            raise ConfigError(f"override {item!r}: {err}") from None
    return cfg


def load(path: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    return apply_overrides(load_config_file(path), overrides)
