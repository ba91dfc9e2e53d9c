"""The sections of the data-free generator methods, the DCGAN and data-free amalgamation are checked as a
whole before any work: an unknown key, a value of the wrong type and a name outside the choices are
refused by ``run.validate``, and so are the cross-field values the config alone shows wrong (one-stage
training of a non-symmetric game, a schedule one-stage cannot merge, ZSKT away from T = 1, a one-stage
asymmetric GAN with a BatchNorm critic, a data-free method without teachers, a GAN with teachers) —
``jka train`` stops on them before any teacher trains or the workdir is written."""
import os

import pytest

from jka import run
from jka.cli import main
from jka.errors import ConfigError
from tests.helpers import error_lines

CONFIGS = {"dafl": "datafree/digits:method=dafl", "zskt": "datafree/digits:method=zskt",
           "dfad": "datafree/digits:method=dfad", "dfq": "datafree/digits:method=dfq", "gan": "datafree/digits_gan",
           "datafree_amalgamation": "datafree/digits_amalgamation"}
GENERATOR = ("dafl", "zskt", "dfad", "dfq")


def refused(name: str, overrides, match: str, **section):
    """``run.validate`` refuses the config of ``name`` with ``overrides`` and ``section`` (dotted key →
    value, written into the section as a config file would write it, no type check)."""
    cfg = run.load(CONFIGS[name], overrides)
    given = cfg[name].to_dict()
    for dotted, value in section.items():
        *path, last = dotted.split(".")
        node = given
        for k in path:
            node = node[k]
        node[last] = value
    cfg[name] = given
    with pytest.raises(ConfigError, match=match):
        run.validate(cfg)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_shipped_config_passes_and_an_unknown_key_is_refused(name):
    cfg = run.load(CONFIGS[name])
    assert run.validate(cfg).name == name
    cfg[name]["no_such_setting"] = 1
    with pytest.raises(ConfigError, match=f"{name}.no_such_setting is not a setting"):
        run.validate(cfg)


@pytest.mark.parametrize("name,key,value", [
    *[(m, k, v) for m in GENERATOR for k, v in (("nz", 0), ("kd_steps", 0), ("g_steps", -1), ("one_stage", "yes"),
                                                ("sample_grids", 1), ("g_optim.lr", -1.0), ("g_optim.b1", 1.0))],
    ("dafl", "T", 0.0), ("dafl", "act", -1.0), ("dfq", "bn", "high"), ("dfq", "T", "4"), ("zskt", "T", -1.0),
    ("gan", "nz", 0), ("gan", "g_lr", -1.0), ("gan", "b2", 1.0), ("gan", "one_stage", 1),
    ("datafree_amalgamation", "gan_steps", 0), ("datafree_amalgamation", "gamma", -0.1),
    ("datafree_amalgamation", "joint", "yes"), ("datafree_amalgamation", "batch_size", 2.5),
])
def test_a_wrong_type_or_range_is_refused(name, key, value):
    refused(name, [], f"{name}.{key}=.*is not valid", **{key: value})


@pytest.mark.parametrize("name,key", [*[(m, k) for m in GENERATOR for k in ("generator", "g_optim.name",
                                                                           "g_optim.schedule")],
                                      ("gan", "loss"), ("gan", "d_norm")])
def test_a_bad_choice_is_refused(name, key):
    refused(name, [], f"{name}.{key}=.*valid choices", **{key: "no_such_choice"})


@pytest.mark.parametrize("name,overrides,match", [
    ("dafl", ["dafl.one_stage=True"], "needs a symmetric game"),
    ("dfq", ["dfq.one_stage=True"], "needs a symmetric game"),
    ("dfad", ["dfad.one_stage=True", "dfad.g_steps=6"], r"1 <= dfad.g_steps <= dfad.kd_steps"),
    ("zskt", ["zskt.one_stage=True", "zskt.g_steps=0"], r"1 <= zskt.g_steps <= zskt.kd_steps"),
    ("gan", ["gan.d_norm=batch"], "d_norm=group"),
    ("gan", ["teachers=[{'workdir': 'teacher'}]"], "gan learns from real images, not teachers"),
    ("dfad", ["teachers=[]"], "dfad needs at least 1 entry in teachers"),
    ("datafree_amalgamation", ["teachers=[]"], "datafree_amalgamation needs at least 1"),
])
def test_config_only_checks_refuse_before_any_work(name, overrides, match):
    refused(name, overrides, match)


def test_train_stops_on_a_refused_one_stage_before_any_teacher_or_workdir(tmp_path, capsys):
    work = tmp_path / "run"
    assert main(["train", "datafree/digits:method=dafl", "dafl.one_stage=True", "--workdir", str(work)]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "dafl.one_stage=True needs a symmetric game" in err[0], err
    assert not os.path.exists(work)
