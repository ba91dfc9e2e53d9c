"""The five amalgamation sections are checked before any work: on the shipped configs, an unknown key,
a value of the wrong type and a name outside a setting's choices are refused by ``run.validate`` with
one ConfigError naming the key; so are the config-only cross checks (the number of teachers,
sub-tasks that repeat a class, ``cfl.teacher_layers``' shape, branching's model and phase steps,
``dense_supervised.kind``)."""
import pytest

from jka import run
from jka.errors import ConfigError

CONFIGS = {"layerwise": "amalgamation/digits:method=layerwise", "cfl": "amalgamation/digits:method=cfl",
           "adaptive": "amalgamation/digits:method=adaptive", "branching": "amalgamation/scenes",
           "dense_supervised": "amalgamation/scenes:part=teacher_seg"}
BAD = [("layerwise", "layers", []), ("layerwise", "weights", [1.0, 1.0]), ("layerwise", "T", "warm"),
       ("layerwise", "schedule", "sometimes"),
       ("cfl", "layers", "block3"), ("cfl", "teacher_layers", "block3"), ("cfl", "weights", [1.0, -1.0, 1.0]),
       ("cfl", "T", 0.0), ("cfl", "ch_ratio", "quarter"),
       ("adaptive", "layers", [3]), ("adaptive", "weights", [1.0, 1.0, 1.0]), ("adaptive", "selection", "vote"),
       ("adaptive", "subtasks", [[]]), ("adaptive", "component_steps", 0), ("adaptive", "calibrate", "yes"),
       ("adaptive", "entropy_over", "image"),
       ("branching", "search_steps", 1.5), ("branching", "tolerance", -0.1), ("branching", "select_batches", 0),
       ("branching", "eval_points", [0, 6]),
       ("dense_supervised", "kind", "normals"), ("dense_supervised", "depth_loss", "huber")]


def _with(method, **values):
    """The shipped config of ``method`` with ``values`` in its section (as a config file writes them)."""
    cfg = run.load(CONFIGS[method])
    cfg[method] = {**cfg[method].to_dict(), **values}
    return cfg


@pytest.mark.parametrize("method", CONFIGS)
def test_the_shipped_config_passes_and_an_unknown_key_is_refused(method):
    assert run.validate(run.load(CONFIGS[method])).name == method
    with pytest.raises(ConfigError, match=f"{method}.no_such_setting is not a setting"):
        run.validate(_with(method, no_such_setting=1))


@pytest.mark.parametrize("method,key,value", BAD)
def test_a_bad_value_or_choice_is_refused(method, key, value):
    with pytest.raises(ConfigError, match=f"{method}.{key}="):
        run.validate(_with(method, **{key: value}))


def _teachers(cfg, n):
    cfg.teachers = cfg.teachers[:n]
    return cfg


@pytest.mark.parametrize("cfg,match", [
    (lambda: _teachers(run.load(CONFIGS["layerwise"]), 0), "layerwise needs at least 1"),
    (lambda: _teachers(run.load(CONFIGS["cfl"]), 0), "cfl needs at least 1"),
    (lambda: _with("cfl", teacher_layers=[["block3"]]), "one list per teacher"),
    (lambda: _with("cfl", teacher_layers=[["block3"], ["block3"]]), "as long as cfl.layers"),
    (lambda: _teachers(run.load(CONFIGS["adaptive"]), 1), "adaptive needs at least 2"),
    (lambda: _with("adaptive", subtasks=[[0, 1], [1, 2]]), "repeat a class"),
    (lambda: run.load(CONFIGS["branching"], ["model.name='segnet'"]), "branchy_segnet"),
    (lambda: _with("branching", search_steps=4800), "search_steps must be in 1..train.steps"),
    (lambda: _with("branching", eval_points=[0]), "one point per task"),
    (lambda: _teachers(run.load(CONFIGS["branching"]), 0), "one teacher per dense task"),
    (lambda: _with("dense_supervised", kind=None), "needs dense_supervised.kind"),
])
def test_config_only_checks_refuse_before_any_work(cfg, match):
    with pytest.raises(ConfigError, match=match):
        run.validate(cfg())
