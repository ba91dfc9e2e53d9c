"""`jka check` on every shipped config: each config of ``jka configs`` with each of its variants (the
values of its ``get_config`` arguments its ``CHOICES`` list; the others keep their default) is
rehearsed on the CPU at its real shapes (loop lengths as shipped; they only scale the projection).

How deep, to stay within ~4 minutes of CPU (the CI machine has 2 cores). Compiling is what costs
(2–35 s a step here; a job's phases add up: NetGraft's nine, the transfer study's ten), tracing
0.3–5 s, running a digits unit milliseconds. So, per config:
- the first single-phase variant (the default where it is one) of a digits config is run:
  compiled, one unit executed (times per unit and the run projected here);
- the first single-phase variant of a config meant for an accelerator (CIFAR, Cars + Aircraft) is
  compiled only (memory from the compiled step, nothing run);
- every other variant, every job (adaptive and data-free amalgamation, task branching, NetGraft,
  the transfer study) and the scenes (their SegNet step compiles in ~10 s; tests/methods trains
  them) are traced: FLOPs, parameters and shapes from the step's jaxpr, nothing compiled, the
  generator methods' student steps of a unit cut to one at CIFAR scale (a loop length: the shapes
  are the config's). Tracing is where a shape mismatch shows; compiling adds the memory. A traced
  variant of the same (method, dataset, architectures, batch, image shape) as the compiled or
  run one is asserted to build the same shapes (parameters, classes, batch, images, teachers).
  tests/test_check.py runs a job (adaptive amalgamation on the digits) phase by phase.
The accelerator test runs one unit of every phase of every variant of those, at the configs' loop lengths.
"""
import functools
import gc
import itertools
import json
import os

import jax
import jax.numpy as jnp
import pytest

from jka import config, methods, models, run
from jka.check import rehearse
from jka.methods.amalgamation.adaptive import derive_subtasks
from jka.methods.distill.netgraft import PHASES as NETGRAFT_PHASES, default_batch_size

SHIPPED = {entry["name"]: entry for entry in config.shipped()}
# Variants a config documents beyond the product of its choices.
EXTRA = {"datafree/digits": [{"method": "dfad", "one_stage": True}, {"method": "zskt", "one_stage": True}]}
# Configs whose product of choices is too large to rehearse variant by variant: the variants rehearsed,
# traced only. The CIFAR-100 benchmark (13 pairs x its methods, ~4 s of CPU a traced variant, ~20 s
# compiled): the cross-style pair whose stages the config sets (3 teacher stages, 4 student ones), for the
# zoo's at and for reviewkd (which pairs the last stages there); crd, dkd and kd_ls on the smallest pair;
# distill/cifar100 compiles the zoo at the same data and batch; the other pairs' networks convert and
# compute as their PyTorch originals in tests/convert/test_cifar_zoo.py.
# JKA_REHEARSE_ALL=1 rehearses every variant of these too (all 195 of the benchmark: 22 minutes on a loaded 2-core host).
SAMPLED = {} if os.environ.get("JKA_REHEARSE_ALL") else {"distill/cifar100_benchmark": [f"distill/cifar100_benchmark:pair={pair},method={method}" for pair, method in (
    ("resnet32x4_mobile_half", "at"), ("resnet32x4_mobile_half", "reviewkd"), ("resnet56_resnet20", "crd"),
    ("resnet56_resnet20", "dkd"), ("resnet56_resnet20", "kd_ls"))]}
CHEAP = {"digits"}            # data.name of the configs run for one unit
CPU_DATA = {"digits", "scenes"}  # data.name of the configs meant for a CPU; every other one is an accelerator's
GENERATOR_METHODS = {"dafl", "zskt", "dfad", "dfq"}
# Variants whose steps differ only in elementwise work (jka counts convolutions and matrix products).
SAME_FLOPS = [
    ["amalgamation/digits:method=adaptive", "amalgamation/digits:method=adaptive_average"],
    ["datafree/digits:method=dfad,one_stage=False", "datafree/digits:method=zskt,one_stage=False"],
    ["datafree/digits:method=dfad,one_stage=True", "datafree/digits:method=zskt,one_stage=True"],
    ["datafree/digits_gan:loss=asymmetric,one_stage=True,d_norm=group",
     "datafree/digits_gan:loss=symmetric,one_stage=True,d_norm=group"],
    ["datafree/digits_gan:loss=asymmetric,one_stage=False,d_norm=group",
     "datafree/digits_gan:loss=symmetric,one_stage=False,d_norm=group",
     "datafree/digits_gan:loss=asymmetric,one_stage=False,d_norm=batch"],
]
# data.name -> the image shape a rehearsal builds at without data.image_size: the datasets' own, NYUv2 as
# jka.data.scenes documents a prepared one.
NATIVE = {"digits": (8, 8, 1), "cifar10": (32, 32, 3), "cifar100": (32, 32, 3), "scenes": (32, 32, 3),
          "nyuv2": (288, 384, 3)}
CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100}


def _valid(name: str, combo: dict) -> bool:
    """A combination a config takes (one-stage needs a symmetric game, a GAN's BatchNorm critic the
    two-stage schedule)."""
    try:
        run.validate(run.load(name + ":" + ",".join(f"{k}={v}" for k, v in combo.items())))
    except Exception:  # noqa: BLE001 - a combination the config refuses: not a variant
        return False
    return True


def variants(name: str) -> list[str]:
    """``NAME`` or ``NAME:key=value,...`` for every variant of a shipped config; the first is the default."""
    if name in SAMPLED:
        return SAMPLED[name]
    entry = SHIPPED[name]
    defaults, choices = entry["args"], entry["variants"]
    ordered = {k: sorted(v, key=lambda x, k=k: x != defaults[k]) for k, v in choices.items()}
    combos = [dict(zip(ordered, values)) for values in itertools.product(*ordered.values())]
    combos = [c for c in combos if _valid(name, c)] + [c for c in EXTRA.get(name, []) if c not in combos]
    return [name + (":" + ",".join(f"{k}={v}" for k, v in c.items()) if c else "") for c in combos]


def test_every_choice_is_a_valid_argument_and_lists_its_default():
    for name, entry in SHIPPED.items():
        assert set(entry["variants"]) <= set(entry["args"]), name
        for arg, values in entry["variants"].items():
            assert entry["args"][arg] in values, f"{name}: the default of {arg} is not among its choices"
        assert _valid(name, {}), name


# -- what the config says, computed without jka.check ------------------------------------------------------
def load(spec: str):
    return run.load(spec)


def image_shape(cfg) -> list:
    size = cfg.data.get("image_size", None)
    return [size, size, 1 if cfg.data.name == "digits" else 3] if size else list(NATIVE[cfg.data.name])


def job_units(cfg) -> int:
    """The steps of every phase of a job, from its config (docs/methods.md)."""
    if cfg.algorithm == "netgraft":
        ng = cfg.netgraft
        return sum(ng.block_steps if name.startswith("block") else ng.chain_steps for name, _, _ in NETGRAFT_PHASES)
    if cfg.algorithm == "datafree_amalgamation":
        a = cfg.datafree_amalgamation
        return a.gan_steps + 3 * a.dual_steps + a.assemble_steps
    if cfg.algorithm == "transfer_study":
        return sum(z["config"].train.steps for z in cfg.transfer_study.zoo)
    if cfg.algorithm == "adaptive":
        subtasks = derive_subtasks([t["classes"] for t in cfg.teachers])
        return len(subtasks) * cfg.adaptive.component_steps + cfg.train.steps
    return cfg.train.steps  # branching: the search's steps and the rest


def job_batch(cfg, phase: str) -> int:
    if cfg.algorithm == "netgraft":
        n = cfg.netgraft.n_per_class
        return min(cfg.netgraft.get("batch_size", None) or default_batch_size(n), n * CLASSES[cfg.data.name])
    if cfg.algorithm == "datafree_amalgamation":
        return cfg.datafree_amalgamation.batch_size
    if cfg.algorithm == "transfer_study":
        return next(z["config"].data.batch_size for z in cfg.transfer_study.zoo if z["name"] == phase)
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
        zoo = cfg.algorithm == "transfer_study"
        assert p["image_shape"] == image_shape(cfg.transfer_study.zoo[0]["config"] if zoo else cfg), where
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


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_variant_is_rehearsed_at_its_real_shapes(name):
    reports, specs, deeper = {}, variants(name), True
    for spec in specs:
        cfg = load(spec)
        mode = "trace" if name in SAMPLED else _mode(cfg, deeper and not methods.get(cfg.algorithm).is_job)
        deeper = deeper and mode == "trace"
        if mode == "trace" and cfg.algorithm in GENERATOR_METHODS and cfg.data.name not in CHEAP:  # written out: one
            section = cfg[cfg.algorithm]
            section.kd_steps, section.g_steps = 1, min(section.g_steps, 1)
        r = rehearse(cfg, execute=mode == "run", trace_only=mode == "trace", repeats=1)
        _check(spec, cfg, r, mode)
        reports[spec] = (cfg, r)
        if len(specs) > 50:  # a long sweep: each variant's traces go with it
            jax.clear_caches()
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
@pytest.mark.parametrize("name", [n for n in sorted(SHIPPED) if load(n).data.get("name") not in CPU_DATA])
def test_every_variant_of_the_accelerator_configs_runs_one_unit_there(name):
    for spec in variants(name):
        cfg = load(spec)
        _check(spec, cfg, rehearse(cfg, execute=True, repeats=1), "run")
