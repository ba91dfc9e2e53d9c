"""`jka check` on every shipped config: each ``configs/**/*.py`` with each of its variants (the values
of its ``get_config`` arguments, read from the config module or the recipe lists it draws on) is
rehearsed on the CPU at its real shapes (loop lengths as shipped; they only scale the projection).

How deep, to stay within ~4 minutes of CPU (the CI machine has 2 cores). Compiling is what costs
(2–35 s a step here; a job's phases add up: NetGraft's nine, the transfer study's ten), tracing
0.3–5 s, running a digits unit milliseconds. So, per config file:
- the first single-phase variant (the default where it is one) of a digits config is run:
  compiled, one unit executed (times per unit and the run projected here);
- the first single-phase variant of a config meant for an accelerator (CIFAR, Cars + Aircraft) is
  compiled only (memory from the compiled step, nothing run);
- every other variant, every job (adaptive and data-free amalgamation, task branching, NetGraft,
  the transfer study) and the scenes (their SegNet step compiles in ~10 s; tests/algorithms trains
  them) are traced: FLOPs, parameters and shapes from the step's jaxpr, nothing compiled, the
  generator methods' student steps of a unit cut to one at CIFAR scale (a loop length: the shapes
  are the config's). Tracing is where a shape mismatch shows; compiling adds the memory. A traced
  variant of the same (algorithm, dataset, architectures, batch, image shape) as the compiled or
  run one is asserted to build the same shapes (parameters, classes, batch, images, teachers).
  tests/test_check.py runs a job (adaptive amalgamation on the digits) phase by phase.
The accelerator test runs one unit of every phase of every variant of those, at the configs' loop lengths.
"""
import functools
import gc
import glob
import importlib.util
import inspect
import itertools
import json
import os

import jax
import jax.numpy as jnp
import pytest

from jka import config, models, run
from jka.algorithms.amalgamation.adaptive import derive_subtasks
from jka.algorithms.datafree.amalgamation.phases import settings
from jka.algorithms.distill.netgraft import default_batch_size, phases as netgraft_phases
from jka.check import rehearse
from jka.losses.distill import TERMS
from jka.recipes.datafree import CIFAR10_PAIRS
from tests.conftest import REPO


def _module(rel: str):
    spec = importlib.util.spec_from_file_location("cfg_" + rel.replace("/", "_")[:-3], os.path.join(REPO, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# The values of each get_config argument, from the config module where it lists them, else from the
# recipe lists; an argument not named keeps its default.
CHOICES = {
    "configs/amalgamation/cars_aircraft.py": lambda m: {"method": ["layerwise", "cfl"]},
    "configs/amalgamation/digits.py": lambda m: {"method": list(m.VARIANTS)},
    "configs/amalgamation/nyuv2.py": lambda m: {},
    "configs/amalgamation/scenes.py": lambda m: {"part": list(m.VARIANTS)},
    "configs/cifar/kd.py": lambda m: {},
    "configs/cifar/teacher.py": lambda m: {},
    "configs/datafree/cifar10.py": lambda m: {"method": list(m.METHODS), "pair": list(CIFAR10_PAIRS)},
    "configs/datafree/digits.py": lambda m: {"method": list(m.UNITS) + ["deepinversion", "cmi"]},
    "configs/datafree/digits_amalgamation.py": lambda m: {"variant": ["jka", "paper"]},
    "configs/datafree/digits_gan.py": lambda m: {"loss": ["asymmetric", "symmetric"], "one_stage": [True, False]},
    "configs/digits/kd.py": lambda m: {"teachers": list(m.VARIANTS)},
    "configs/digits/teacher.py": lambda m: {},
    "configs/distill/cifar100.py": lambda m: {"method": list(TERMS)},
    "configs/distill/cifar100_ffl.py": lambda m: {},
    "configs/distill/cifar_netgraft.py": lambda m: {"dataset": ["cifar10", "cifar100"]},
    "configs/distill/digits.py": lambda m: {"method": list(TERMS) + ["scratch"]},
    "configs/distill/digits_ffl.py": lambda m: {"alone": [False, True]},
    "configs/distill/digits_netgraft.py": lambda m: {},
    "configs/transfer/digits_study.py": lambda m: {},
}
# Variants a config documents beyond the product of its choices.
EXTRA = {"configs/datafree/digits.py": [{"method": "dfad", "one_stage": True}, {"method": "zskt", "one_stage": True}],
         "configs/datafree/digits_gan.py": [{"loss": "asymmetric", "one_stage": False, "d_norm": "batch"}]}
# Arguments whose other values are free-form (any architecture or dataset name): the default only.
FREE = {"configs/cifar/kd.py": {"teacher", "student"}, "configs/cifar/teacher.py": {"arch", "dataset"}}
CHEAP = {"digits"}            # data.name of the configs run for one unit
CPU_DATA = {"digits", "scenes"}  # data.name of the configs meant for a CPU; every other one is an accelerator's
# Variants whose steps differ only in elementwise work (jka counts convolutions and matrix products).
SAME_FLOPS = [
    ["configs/amalgamation/digits.py:method=adaptive", "configs/amalgamation/digits.py:method=adaptive_average"],
    ["configs/datafree/digits.py:method=dfad", "configs/datafree/digits.py:method=zskt"],
    ["configs/datafree/digits.py:method=dfad,one_stage=True", "configs/datafree/digits.py:method=zskt,one_stage=True"],
    ["configs/datafree/digits_gan.py:loss=asymmetric,one_stage=True", "configs/datafree/digits_gan.py:loss=symmetric,one_stage=True"],
    ["configs/datafree/digits_gan.py:loss=asymmetric,one_stage=False", "configs/datafree/digits_gan.py:loss=symmetric,one_stage=False",
     "configs/datafree/digits_gan.py:loss=asymmetric,one_stage=False,d_norm=batch"],
]
# data.name -> the image shape a rehearsal builds at without data.image_size: the datasets' own, NYUv2 as
# jka.data.scenes documents a prepared one.
NATIVE = {"digits": (8, 8, 1), "cifar10": (32, 32, 3), "cifar100": (32, 32, 3), "scenes": (32, 32, 3),
          "nyuv2": (288, 384, 3)}
CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100}


def config_files() -> list[str]:
    return sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "configs", "**", "*.py"),
                                                               recursive=True))


def _defaults(rel: str) -> dict:
    return {k: p.default for k, p in inspect.signature(_module(rel).get_config).parameters.items()}


def variants(rel: str) -> list[str]:
    """``FILE.py`` or ``FILE.py:key=value,...`` for every variant of the config at ``rel``; the first
    is the default."""
    defaults = _defaults(rel)
    choices = {k: sorted(v, key=lambda x, k=k: x != defaults[k]) for k, v in CHOICES[rel](_module(rel)).items()}
    combos = [dict(zip(choices, values)) for values in itertools.product(*choices.values())]
    combos += [c for c in EXTRA.get(rel, []) if c not in combos]
    return [rel + (":" + ",".join(f"{k}={v}" for k, v in c.items()) if c else "") for c in combos]


def test_every_config_and_every_argument_is_enumerated():
    assert config_files() == sorted(CHOICES), "add the new config's variants to CHOICES"
    for rel in config_files():
        args = set(inspect.signature(_module(rel).get_config).parameters)
        named = set(CHOICES[rel](_module(rel))) | {k for c in EXTRA.get(rel, []) for k in c} | FREE.get(rel, set())
        assert args == named, f"{rel}: get_config takes {sorted(args)}, the table names {sorted(named)}"
        defaults = _defaults(rel)
        assert all(defaults[k] in v for k, v in CHOICES[rel](_module(rel)).items()), f"{rel}: a default is not listed"


# -- what the config says, computed without jka.check ------------------------------------------------------
def load(spec: str):
    return config.load(os.path.join(REPO, spec))


def image_shape(cfg) -> list:
    size = cfg.data.get("image_size", None)
    return [size, size, 1 if cfg.data.name == "digits" else 3] if size else list(NATIVE[cfg.data.name])


def job_units(cfg) -> int:
    """The steps of every phase of a job, from its config (docs/methods.md)."""
    if cfg.algorithm == "netgraft":
        ng = cfg.netgraft
        return sum(ng.block_steps if name.startswith("block") else ng.chain_steps for name, _, _ in netgraft_phases())
    if cfg.algorithm == "datafree_amalgamation":
        a = settings(cfg)
        return a.gan_steps + 3 * a.dual_steps + a.assemble_steps
    if cfg.algorithm == "transfer_study":
        return sum(z["config"].train.steps for z in cfg.zoo)
    if cfg.algorithm == "adaptive":
        return len(derive_subtasks([t["classes"] for t in cfg.teachers])) * cfg.amal.component_steps + cfg.train.steps
    return cfg.train.steps  # branching: the search's steps and the rest


def job_batch(cfg, phase: str) -> int:
    if cfg.algorithm == "netgraft":
        n = cfg.netgraft.n_per_class
        return min(cfg.netgraft.get("batch_size", None) or default_batch_size(n), n * CLASSES[cfg.data.name])
    if cfg.algorithm == "datafree_amalgamation":
        return settings(cfg).batch_size
    if cfg.algorithm == "transfer_study":
        return next(z["config"].data.batch_size for z in cfg.zoo if z["name"] == phase)
    return cfg.data.batch_size


def count(arch: str, classes: int, kwargs: dict, shape) -> int:
    return _count(arch, classes, json.dumps(kwargs, sort_keys=True), tuple(shape))


@functools.lru_cache(maxsize=None)
def _count(arch: str, classes: int, kwargs: str, shape: tuple) -> int:
    variables = jax.eval_shape(lambda: models.create(arch, classes, **json.loads(kwargs)).init(
        jax.random.PRNGKey(0), jnp.zeros((1, *shape)), train=False))
    return sum(int(a.size) for a in jax.tree.leaves(variables["params"]))


def phases(r: dict) -> list[dict]:
    return r.get("phases", [r])


# -- the sweep --------------------------------------------------------------------------------------------
def _mode(cfg, first_single: bool) -> str:
    name = cfg.data.get("name", None)
    if first_single and name in CHEAP:
        return "run"
    return "compile" if first_single and name not in CPU_DATA else "trace"


def _check(spec: str, cfg, r: dict, mode: str):
    ps = phases(r)
    job = "phases" in r
    assert r["algorithm"] == cfg.algorithm
    assert r["units"] == (job_units(cfg) if job else cfg.train.steps) == sum(p["units"] for p in ps), spec
    assert r["h100"]["run_s"] == pytest.approx(sum(p["h100"]["run_s"] for p in ps))
    for p in ps:
        where = f"{spec} {p.get('phase', '')}"
        assert p["flops_per_unit"] > 0, where
        assert p["image_shape"] == image_shape(cfg if cfg.algorithm != "transfer_study" else cfg.zoo[0]["config"]), where
        assert p["batch"] == (job_batch(cfg, p["phase"]) if job else cfg.data.batch_size), where
        if not job:
            assert p["model"] == cfg.model.name
        if "student" in p["parameters"] and p["model"] != "branchy_segnet":  # exported: one branch point a task
            assert p["parameters"]["student"] == count(p["model"], p["classes"], p["model_kwargs"], p["image_shape"]), where
        if mode == "trace":
            assert p["step_memory_bytes"] is None and p["unit_s_here"] is None
        else:
            state_bytes = 4 * sum(p["parameters"].values())
            assert p["step_memory_bytes"] > state_bytes and p["h100"]["fits"], where
        if mode == "run":
            assert p["unit_s_here"] > 0 and p["run_s_here"] == pytest.approx(p["units"] * p["unit_s_here"]), where
    if mode == "run":
        assert r["run_s_here"] == pytest.approx(sum(p["run_s_here"] for p in ps))


def _shape(r: dict) -> dict:
    """What variants of one (algorithm, dataset, architectures, batch, image shape) share, per phase."""
    return {p.get("phase"): (p["algorithm"], p["model"], p["classes"], p["parameters"].get("student"), p["batch"],
                             p["image_shape"], p["teacher_parameters"]) for p in phases(r)}


@pytest.fixture(autouse=True)
def _release():
    """Each config's arrays go with it (jit caches keep an algorithm, and its teachers, alive)."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.mark.parametrize("rel", config_files())
def test_every_variant_is_rehearsed_at_its_real_shapes(rel):
    reports, specs, deeper = {}, variants(rel), True
    for spec in specs:
        cfg = load(spec)
        mode = _mode(cfg, deeper and cfg.algorithm not in run.JOBS)
        deeper = deeper and mode == "trace"
        if mode == "trace" and cfg.get("datafree", None) and cfg.data.name not in CHEAP:  # steps written out: one
            cfg.datafree.kd_steps, cfg.datafree.g_steps = 1, min(cfg.datafree.g_steps, 1)
        r = rehearse(cfg, execute=mode == "run", trace_only=mode == "trace", repeats=1)
        _check(spec, cfg, r, mode)
        reports[spec] = (cfg, r)
    key = lambda c: (c.algorithm, c.data.get("name"), c.model.name, [t.get("arch") for t in c.get("teachers", ())],  # noqa: E731
                     c.data.batch_size, image_shape(c))
    default_cfg, default = reports[specs[0]]
    for spec, (cfg, r) in reports.items():
        if key(cfg) == key(default_cfg):
            mine, first = _shape(r), _shape(default)
            assert {k: mine[k] for k in first if k in mine} == {k: first[k] for k in first if k in mine}, \
                f"{spec} builds other shapes than {specs[0]}"
    for group in SAME_FLOPS:
        if group[0] in reports:
            flops = {s: [p["flops_per_unit"] for p in phases(reports[s][1])] for s in group}
            assert len({tuple(f) for f in flops.values()}) == 1, flops


@pytest.mark.accelerator
@pytest.mark.parametrize("rel", [r for r in config_files() if load(variants(r)[0]).data.get("name") not in CPU_DATA])
def test_every_variant_of_the_accelerator_configs_runs_one_unit_there(rel):
    for spec in variants(rel):
        cfg = load(spec)
        _check(spec, cfg, rehearse(cfg, execute=True, repeats=1), "run")
