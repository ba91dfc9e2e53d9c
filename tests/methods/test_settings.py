"""Every method's section is checked as a whole before any work: for every registered method, an
unknown key, a value of the wrong type in each setting and a name outside each setting's choices
are refused by ``run.validate`` with one ConfigError naming the key; and ``jka train`` with such a
value stops with exit 2 before any teacher trains or the workdir is written."""
import dataclasses
import os

import pytest

from jka import methods, run
from jka.cli import main
from jka.configs.common import config
from jka.errors import ConfigError
from jka.settings import ANY
from tests.helpers import error_lines

WITH_SETTINGS = sorted(name for name, m in methods.METHODS.items() if m.settings is not None)


def _fields(cls, prefix=""):
    """(dotted key, default, rule) of every setting, nested sections flattened."""
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            yield from _fields(type(default), f"{prefix}{f.name}.")
        else:
            yield prefix + f.name, default, f.metadata.get("rule")


def _wrong_type(default):
    """A value of another type than any valid one (dicts fit no scalar, list or string rule)."""
    return {"not": "a setting value"} if not isinstance(default, dict) else 3


def _cfg(name):
    return run.complete(config(name))


def _set(cfg, key, dotted, value):
    """``cfg.<key>.<dotted> = value`` as a config file would write it (a new section, no type check)."""
    section = cfg[key].to_dict()
    node = section
    *path, last = dotted.split(".")
    for k in path:
        node = node[k]
    node[last] = value
    cfg[key] = section


def test_a_completed_config_holds_every_setting_at_its_default_and_passes():
    assert "supervised" not in WITH_SETTINGS and {"kd", "distill"} <= set(WITH_SETTINGS)
    for name in WITH_SETTINGS:
        m = methods.METHODS[name]
        cfg = run.complete(config(name))
        assert set(cfg[m.key]) == {k.split(".")[0] for k, _, _ in _fields(m.settings)}, name
        assert m.read(cfg) == m.settings(), name  # the typed section equals the dataclass's defaults


@pytest.mark.parametrize("name", WITH_SETTINGS)
def test_an_unknown_key_in_a_section_is_refused(name):
    cfg = _cfg(name)
    key = methods.METHODS[name].key
    cfg[key]["no_such_setting"] = 1
    with pytest.raises(ConfigError, match=f"{key}.no_such_setting is not a setting"):
        run.validate(cfg)


@pytest.mark.parametrize("name", WITH_SETTINGS)
def test_a_wrong_type_in_any_setting_is_refused(name):
    m = methods.METHODS[name]
    checked = 0
    for dotted, default, rule in _fields(m.settings):
        if rule is ANY:
            continue
        cfg = _cfg(name)
        _set(cfg, m.key, dotted, _wrong_type(default))
        with pytest.raises(ConfigError, match=f"{m.key}.{dotted}="):
            run.validate(cfg)
        checked += 1
    assert checked, name


@pytest.mark.parametrize("name", WITH_SETTINGS)
def test_a_bad_choice_in_any_setting_is_refused(name):
    m = methods.METHODS[name]
    for dotted, _, rule in _fields(m.settings):
        if rule is not None and rule.choices:
            cfg = _cfg(name)
            _set(cfg, m.key, dotted, "no_such_choice")
            with pytest.raises(ConfigError, match=f"{m.key}.{dotted}=.*valid choices"):
                run.validate(cfg)


def test_a_section_of_another_method_is_refused():
    cfg = _cfg("kd")
    cfg.distill = {"method": "at"}
    with pytest.raises(ConfigError, match="distill is not a setting"):
        run.validate(cfg)


@pytest.mark.parametrize("args, needle", [
    (["distill/digits:method=foo"], "unknown distillation method (distill.method) 'foo'"),
    (["distill/digits:method=at", "distill.T=-1"], "distill.T=-1.0 is not valid"),
    (["digits/kd", "kd.alpha=fast"], "kd.alpha='fast' has type str"),
])
def test_a_bad_setting_stops_train_before_any_teacher_or_workdir(tmp_path, capsys, args, needle):
    work = tmp_path / "run"
    assert main(["train", *args, "--workdir", str(work)]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and needle in err[0], err
    assert not os.path.exists(work)  # no teacher trained into it, no config.json binding it
