"""Every bad config value or config file is refused up front: exit 2, one line naming the key, and
nothing trained or written (the workdir is never made)."""
import dataclasses
import os
from unittest import mock

import ml_collections
import pytest
import tensorflow_datasets as tfds

from jka import config as config_lib
from jka import run
from jka.cli import main
from jka.configs.common import config
from jka.data.sources import check_tfds_name
from jka.errors import ConfigError
from jka.settings import defaults, read
from jka.train import schema

TEACHER = "digits/teacher"
KD = "digits/kd"
# Tiny and on one device, so a value wrongly let through trains for a moment, not for minutes.
TINY = ["train.steps=3", "train.progress=False", "train.mesh.data=1", "model.kwargs={'width': 0.25}"]


def refused(capsys, tmp_path, config, *overrides):
    """Run ``jka train`` and return its one error line, after checking it wrote nothing."""
    workdir = tmp_path / "w"
    assert main(["train", config, *overrides, "--workdir", str(workdir)]) == 2
    assert not workdir.exists()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jka: error:"), lines
    return lines[0]


BAD_VALUES = [
    # ranges of ints
    ("train.steps=-5", "train.steps=-5"), ("train.steps=0", "train.steps=0"),
    ("train.keep_checkpoints=0", "train.keep_checkpoints=0"), ("train.log_every=0", "train.log_every=0"),
    ("train.eval_every=-1", "train.eval_every"), ("train.checkpoint_every=-10", "train.checkpoint_every"),
    ("data.augment.crop_pad=-2", "data.augment.crop_pad=-2"), ("data.batch_size=0", "data.batch_size=0"),
    ("data.batch_size=-3", "data.batch_size=-3"), ("data.image_size=0", "data.image_size"),
    ("data.read_workers=-1", "data.read_workers"), ("seed=-1", "seed=-1"), ("seed=4294967296", "seed="),
    ("train.mesh.data=0", "train.mesh.data"), ("train.mesh.data=-2", "train.mesh.data"),
    ("train.mesh.model=0", "train.mesh.model"), ("train.shard.min_size=0", "train.shard.min_size"),
    ("optim.warmup_steps=-1", "optim.warmup_steps"),
    ("optim.warmup_steps=3", "optim.warmup_steps=3 is not valid: it must be less than train.steps"),
    # ranges of numbers, NaN and inf
    ("optim.lr=-0.1", "optim.lr=-0.1"), ("optim.lr=nan", "optim.lr=nan"),
    ("optim.lr=inf", "optim.lr=inf"), ("optim.momentum=1.0", "optim.momentum"),
    ("optim.momentum=-0.1", "optim.momentum"), ("optim.weight_decay=-1e-4", "optim.weight_decay"),
    ("optim.grad_clip=0", "optim.grad_clip"), ("optim.grad_clip=-1.0", "optim.grad_clip"),
    ("optim.decay_at=[0.5,1.5]", "optim.decay_at"), ("optim.decay_at=[0]", "optim.decay_at"),
    ("optim.decay_factor=0", "optim.decay_factor"),
    # names
    ("optim.name=lion", "unknown optimizer 'lion'"), ("optim.schedule=linear", "unknown schedule 'linear'"),
    ("train.dtype=float16", "unknown dtype 'float16'"), ("model.name=resnet9000", "unknown model 'resnet9000'"),
    # classes
    ("data.classes=[]", "data.classes=[]"), ("data.classes=[1,1]", "data.classes"),
    ("data.classes=[-1,2]", "data.classes"), ("data.classes=5", "data.classes=5"),
    ("data.classes=['a']", "data.classes"),
    # types: what the config holds, bools never passing as numbers
    ("train.steps=True", "train.steps=True has type bool"), ("optim.lr=True", "optim.lr=True has type bool"),
    ("train.steps=5.5", "train.steps=5.5 has type float"), ("train.progress=1", "train.progress=1"),
    ("train.init_from=5", "train.init_from"), ("data.data_dir=3", "data.data_dir=3"),
    ("data.in_memory='yes'", "data.in_memory"), ("teachers=[{'classes': [0]}]", "teachers[0] needs a 'workdir'"),
    # model options
    ("model.kwargs={'widht': 0.5}", "model.kwargs"), ("model.kwargs={'width': 'big'}", "model.kwargs.width"),
]


# a method's section (every method's: tests/methods/test_settings.py)
BAD_KD_VALUES = [("kd.T=0", "kd.T"), ("kd.alpha=-1", "kd.alpha"), ("kd.beta=nan", "kd.beta"),
                 ("kd.alpha=-inf", "kd.alpha")]


@pytest.mark.parametrize("override, needle", BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_bad_value_is_refused_before_any_work(tmp_path, capsys, override, needle):
    assert needle in refused(capsys, tmp_path, TEACHER, *TINY, override)


@pytest.mark.parametrize("override, needle", BAD_KD_VALUES, ids=[o for o, _ in BAD_KD_VALUES])
def test_bad_method_value_is_refused_before_any_teacher_trains(tmp_path, capsys, override, needle):
    assert needle in refused(capsys, tmp_path, KD, *TINY, override)


def test_bad_teacher_config_is_refused_before_the_first_teacher_trains(tmp_path, capsys):
    line = refused(capsys, tmp_path, KD, "train.mesh.data=1", "teachers.1.config.optim.lr=-1.0")
    assert "'teacher_b'" in line and "optim.lr=-1.0" in line


def test_misspelled_tfds_name_is_refused_with_close_matches_and_no_download(tmp_path, capsys):
    with mock.patch.object(tfds, "builder", side_effect=AssertionError("no builder may be made")), \
            mock.patch.object(tfds, "data_source", side_effect=AssertionError("nothing may be read")):
        line = refused(capsys, tmp_path, TEACHER, *TINY, "data.name=cifar01")
    assert "data.name='cifar01'" in line and "close matches: cifar10" in line


def test_a_tfds_dataset_without_tensorflow_datasets_installed_is_one_line_naming_the_extra(tmp_path, capsys):
    with mock.patch.dict("sys.modules", {"tensorflow_datasets": None}):  # `import` raises ImportError
        line = refused(capsys, tmp_path, TEACHER, *TINY, "data.name=cifar10")
        run.validate(run.load(TEACHER, TINY))  # the digits need no tfds
    assert "data.name='cifar10'" in line and "pip install 'jka[tfds]'" in line


def test_tfds_name_check_accepts_known_and_prepared_names(tmp_path):
    check_tfds_name("cifar10")
    check_tfds_name("cifar10:3.0.2")
    os.makedirs(tmp_path / "my_prepared")  # not a tfds builder, but prepared in data_dir
    check_tfds_name("my_prepared", str(tmp_path))
    with pytest.raises(ConfigError, match=r"data.sources\[0\].name='mnsit'.*close matches: mnist"):
        run.validate(run.complete(ml_collections.ConfigDict(dict(data=dict(name="x", sources=[dict(name="mnsit")])))))


BAD_FILES = {
    "syntax": ("def get_config(:\n    pass\n", "syntax.py:1 failed: SyntaxError"),
    "raises_on_import": ("x = 1\nraise RuntimeError('boom')\n", "raises_on_import.py:2 failed: RuntimeError: boom"),
    "raises_in_get_config": ("def get_config():\n    return {}['nope']\n", "raises_in_get_config.py:2 failed: KeyError"),
    "bad_import": ("from jka.configs.common import no_such_builder\n", "bad_import.py:1 failed: ImportError"),
    "returns_none": ("def get_config():\n    pass\n", "returned NoneType None"),
    "returns_list": ("def get_config():\n    return [1, 2]\n", "returned list [1, 2]"),
    "no_get_config": ("CONFIG = {}\n", "has no get_config()"),
    "bool_seed": ("from jka.configs.common import digits_teacher\n\ndef get_config():\n"
                  "    cfg = digits_teacher()\n    cfg.seed = True\n    return cfg\n", "seed=True is not valid"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_config_file_is_refused_in_one_line(tmp_path, capsys, name):
    text, needle = BAD_FILES[name]
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    assert needle in refused(capsys, tmp_path, str(path), *(TINY if name == "bool_seed" else ()))


def test_a_dict_from_get_config_is_accepted_and_completed(tmp_path):
    path = tmp_path / "plain.py"
    path.write_text("def get_config():\n    return {'algorithm': 'supervised', 'train': {'steps': 3}}\n")
    cfg = run.load(str(path))
    assert isinstance(cfg, ml_collections.ConfigDict) and cfg.train.steps == 3
    assert cfg.train.log_every == 50 and cfg.optim.name == "sgd"  # the keys it leaves out: their defaults
    run.validate(cfg)


def test_an_unknown_key_anywhere_is_refused(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text("def get_config():\n    return {'algorithm': 'supervised', 'trian': {'steps': 3}}\n")
    with pytest.raises(ConfigError, match="trian is not a setting"):
        run.validate(run.load(str(path)))
    with pytest.raises(ConfigError, match="data.augment.crop is not a setting"):
        cfg = run.complete(config("supervised"))
        cfg.data.augment = {"crop": 2}
        run.validate(cfg)


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, ml_collections.ConfigDict) and len(value):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield prefix + key


def test_every_base_key_has_a_rule_or_a_typed_default():
    keys = set(_leaves(ml_collections.ConfigDict(defaults(schema.Base))))
    assert {"data.augment.crop_pad", "optim.lr", "train.mesh.data", "train.shard.min_size", "teachers"} <= keys
    assert len(keys) >= 40


def test_every_shipped_config_and_its_teachers_pass_the_check():
    shipped = config_lib.shipped()
    assert len(shipped) >= 19
    for entry in shipped:
        cfg = run.load(entry["name"])
        run.validate(cfg)
        for spec in run.networks(cfg):
            if spec.get("config", None) is not None:
                run.validate(run.network_config(spec, cfg))


def test_a_section_checks_types_against_its_defaults():
    @dataclasses.dataclass(frozen=True)
    class Section:
        steps: int = 10
        lr: float = 0.1
        name: str = "x"
        flag: bool = False
        layers: tuple = ("a",)

    assert read(Section, dict(lr=1, layers=["b"]), "s").lr == 1  # an int where a float is expected
    assert read(Section, dict(layers=["b"]), "s").layers == ("b",)
    for key, value in [("steps", 2.5), ("steps", True), ("lr", float("nan")), ("name", 3), ("flag", 1),
                       ("layers", "a")]:
        with pytest.raises(ConfigError, match=rf"^s\.{key}=.* is not valid: it must be a"):
            read(Section, {key: value}, "s")


def test_after_every_refused_value_the_workdir_is_as_found_and_the_corrected_command_trains(tmp_path, capsys):
    """Each bad value of the table above, given for a workdir the user already made, leaves it
    byte-identical; the corrected command (the same config without the bad value) then trains there."""
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("the user's")
    for override, _ in BAD_VALUES:
        assert main(["train", TEACHER, *TINY, override, "--workdir", str(workdir)]) == 2, override
        assert sorted(os.listdir(workdir)) == ["notes.txt"], override
    capsys.readouterr()
    assert main(["train", TEACHER, *TINY, "--workdir", str(workdir)]) == 0
    assert (workdir / "notes.txt").read_text() == "the user's" and (workdir / "summary.json").exists()
