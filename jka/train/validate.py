"""A run's config checked before any work: the type and range of every key of
:func:`jka.recipes.base_config` (the table :data:`RULES`), the few values that depend on others, the
model's options and the dataset's name. A key a config leaves out is not checked (the code's
default holds). The sections algorithms add (``distill``, ``amal``, ...) are checked against their
defaults by :func:`jka.config.section` when the algorithm reads them.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import ml_collections

from jka import models
from jka.config import brief
from jka.data.sources import check_names
from jka.errors import ConfigError, unknown_choice
from jka.train.state import OPTIMIZERS, SCHEDULES
from jka.train.teachers import DTYPES


class Rule(NamedTuple):
    ok: Callable[[Any], bool]
    must: str             # what a valid value is: "an int >= 1"
    kind: str = ""        # a name: what it names ("optimizer"); the message lists the choices
    choices: tuple = ()


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # True is an int in Python


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_dict(v) -> bool:
    return isinstance(v, (dict, ml_collections.ConfigDict))


def integer(low: int, *also: int) -> Rule:
    """An int >= ``low`` (or one of ``also``)."""
    return Rule(lambda v: _is_int(v) and (v >= low or v in also),
                f"an int >= {low}" + "".join(f" or {a}" for a in also))


def number(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False) -> Rule:
    """A finite number from ``low`` to ``high`` (``*_open``: that end excluded)."""
    def ok(v):
        return _is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    ends = [f"{'>' if low_open else '>='} {low:g}"]
    if high < math.inf:
        ends.append(f"{'<' if high_open else '<='} {high:g}")
    return Rule(ok, "a finite number " + " and ".join(ends))


def choice(kind: str, names) -> Rule:
    return Rule(lambda v: isinstance(v, str) and v in names, "", kind, tuple(names))


def optional(rule: Rule, none: str = "None") -> Rule:
    return Rule(lambda v: v is None or rule.ok(v), f"{none} or {rule.must}")


def _classes_ok(v) -> bool:
    return (isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_int(c) and c >= 0 for c in v)
            and len(set(v)) == len(v))


def _teachers_ok(v) -> bool:
    return isinstance(v, (list, tuple)) and all(
        _is_dict(t) and isinstance(t.get("workdir", None), str) and t["workdir"]
        and (t.get("classes", None) is None or _classes_ok(t["classes"])) for t in v)


BOOL = Rule(lambda v: isinstance(v, bool), "True or False")
TEXT = Rule(lambda v: isinstance(v, str) and v != "", "a non-empty string")
CLASSES = Rule(_classes_ok, "a non-empty list of distinct class indices >= 0")

RULES: dict[str, Rule] = {
    "algorithm": TEXT,
    "seed": Rule(lambda v: _is_int(v) and 0 <= v < 2 ** 32, "an int from 0 to 2**32 - 1"),
    "data.name": TEXT,
    "data.image_size": optional(integer(1)),
    "data.batch_size": integer(1),
    "data.classes": optional(CLASSES, "None (every class)"),
    "data.data_dir": optional(TEXT),
    "data.in_memory": Rule(lambda v: v is None or isinstance(v, bool) or v == "auto",
                           "True (in host memory), False (read on demand) or None (auto)"),
    "data.read_workers": integer(0),
    "data.augment.crop_pad": integer(0),
    "data.augment.flip": BOOL,
    "model.name": choice("model", models.available()),
    "model.kwargs": Rule(_is_dict, "a dict of the model's options, e.g. {'width': 0.5}"),
    "teachers": Rule(_teachers_ok, "a list of dicts, each with a 'workdir' (and maybe 'classes', 'config', 'arch')"),
    "optim.name": choice("optimizer", OPTIMIZERS),
    "optim.lr": number(0),  # 0 freezes the weights (BN statistics still move)
    "optim.momentum": number(0, 1, high_open=True),
    "optim.nesterov": BOOL,
    "optim.weight_decay": number(0),
    "optim.schedule": choice("schedule", SCHEDULES),
    "optim.warmup_steps": integer(0),
    "optim.grad_clip": optional(number(0, low_open=True)),
    "optim.decay_at": Rule(lambda v: isinstance(v, (list, tuple)) and all(number(0, 1, True, True).ok(f) for f in v),
                           "a list of fractions of training, each > 0 and < 1"),
    "optim.decay_factor": number(0, low_open=True),
    "loss.T": number(0, low_open=True),
    "loss.alpha": number(0),
    "loss.beta": number(0),
    "train.steps": integer(1),
    "train.log_every": integer(1),
    "train.eval_every": integer(0),
    "train.checkpoint_every": integer(0),
    "train.keep_checkpoints": integer(1),
    "train.dtype": choice("dtype", DTYPES),
    "train.progress": BOOL,
    "train.mesh.data": integer(1, -1),
    "train.mesh.model": integer(1),
    "train.init_from": optional(Rule(lambda v: isinstance(v, str), "a path (or '' for none)")),
    "train.shard.teachers": BOOL,
    "train.shard.state": BOOL,
    "train.shard.min_size": integer(1),
}

_MISSING = object()

# Options a job fills in when it builds the model, so model.kwargs need not give them
# (task branching: one output width per task).
RUN_FILLS = {"branchy_segnet": lambda num_classes: {"task_channels": (num_classes,)}}


def _get(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = node.get(part, _MISSING) if _is_dict(node) else _MISSING
        if node is _MISSING:
            break
    return node


def _invalid(key: str, value, reason: str) -> ConfigError:
    return ConfigError(f"{key}={brief(value)} is not valid: {reason}; fix it in the config or override {key}=...")


def _check_model(cfg) -> None:
    """``model.kwargs`` are options ``model.name`` takes, of the types of their defaults."""
    name, kwargs, classes = cfg.model.name, _get(cfg, "model.kwargs"), _get(cfg, "data.classes")
    kwargs = {} if kwargs is _MISSING else kwargs.to_dict() if hasattr(kwargs, "to_dict") else dict(kwargs)
    n = len(classes) if classes not in (None, _MISSING) else 2
    models.check_kwargs(name, {**RUN_FILLS.get(name, lambda _: {})(n), **kwargs}, num_classes=n)


def check(cfg) -> None:
    """Refuse (:class:`ConfigError`, one line naming the key, the value and what is valid) the first
    bad value of ``cfg``."""
    for key, rule in RULES.items():
        value = _get(cfg, key)
        if value is _MISSING or rule.ok(value):
            continue
        reason = str(unknown_choice(rule.kind, value, rule.choices)) if rule.kind else f"it must be {rule.must}"
        raise _invalid(key, value, reason)
    steps, warmup = _get(cfg, "train.steps"), _get(cfg, "optim.warmup_steps")
    if _MISSING not in (steps, warmup) and warmup >= steps:
        raise _invalid("optim.warmup_steps", warmup, f"it must be less than train.steps ({steps})")
    if _get(cfg, "model.name") is not _MISSING:
        _check_model(cfg)
    if _is_dict(_get(cfg, "data")):
        check_names(cfg.data)
