"""What a user can run, by name, and how: the registry, teachers resolved once, jobs dispatched.

``ALGORITHMS`` are trained as one phase (one compiled step, :func:`jka.train.phases.run_phase`);
``JOBS`` are plain functions over phases (``run(cfg, workdir, teachers) -> summary``; ``final`` gives
the phase ``jka eval`` evaluates). Internal phases (a job's component nets, dual blocks, ...) are
not nameable. Every network a config names (``teachers``, a study's ``zoo``) is found here: an
exported model at ``workdir`` (relative paths resolve against the run's workdir), trained first from
its ``config`` when the directory has none.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional

import ml_collections

from jka import config as config_lib
from jka import paths
from jka.algorithms.amalgamation import adaptive, branching
from jka.algorithms.amalgamation.cfl import CommonFeatureLearning
from jka.algorithms.amalgamation.dense import DenseSupervised
from jka.algorithms.amalgamation.layerwise import LayerwiseAmalgamation
from jka.algorithms.datafree.amalgamation import job as datafree_amalgamation
from jka.algorithms.datafree.cmi import CMI
from jka.algorithms.datafree.gan import GAN
from jka.algorithms.datafree.generator import DAFL, DFAD, DFQ, ZSKT
from jka.algorithms.datafree.inversion import DeepInversion
from jka.algorithms.distill import netgraft
from jka.algorithms.distill.ffl import FFL
from jka.algorithms.distill.zoo import Distill
from jka.algorithms.kd import KD
from jka.algorithms.supervised import Supervised
from jka.errors import ConfigError, UserError, unknown_choice
from jka.train import mesh as mesh_lib, validate
from jka.train.export import has_model
from jka.train import loop, preemption
from jka.train.phases import Phase, evaluate_phase, run_phase
from jka.train.teachers import compute_dtype, load_teacher
from jka.train.workdir import check_config, check_writable, lock, write_config
from jka.transfer import plots
from jka.transfer.study import run_study
from jka.transfer.zoo import zoo_model

ALGORITHMS = {cls.name: cls for cls in (
    Supervised, DenseSupervised, KD, LayerwiseAmalgamation, CommonFeatureLearning, Distill, FFL,
    DAFL, ZSKT, DFAD, DFQ, DeepInversion, CMI, GAN)}


@dataclasses.dataclass(frozen=True)
class Job:
    run: Callable          # (cfg, workdir, teachers) -> summary
    final: Optional[Callable] = None  # (cfg, workdir, teachers) -> the Phase `jka eval` evaluates


def _transfer_study(cfg, workdir, teachers):
    plots.require()  # its pictures come last: refuse before the zoo trains
    return run_study(cfg, workdir, zoo_of(cfg, workdir))


JOBS = {
    "adaptive": Job(adaptive.run, adaptive.final_phase),
    "branching": Job(branching.run, branching.final_phase),
    "netgraft": Job(netgraft.run, netgraft.final_phase),
    "datafree_amalgamation": Job(datafree_amalgamation.run, datafree_amalgamation.final_phase),
    "transfer_study": Job(_transfer_study),
}


def names() -> list[str]:
    """Every ``algorithm`` a config may name."""
    return sorted({**ALGORITHMS, **JOBS})


def lookup(name: str):
    """The algorithm class or the :class:`Job` called ``name``."""
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    if name in JOBS:
        return JOBS[name]
    raise unknown_choice("algorithm", name, names())


# -- networks a config names ------------------------------------------------------------------------
def network_path(spec, workdir: str) -> str:
    path = spec.get("workdir", None)
    if not path:
        raise ConfigError("each teachers[i] (and zoo[i]) needs a 'workdir' (an exported model or where to train it)")
    return path if paths.isabs(path) else os.path.join(workdir, path)


def network_config(spec, parent):
    """The config a teacher (or zoo) entry is trained from: ``spec.config``, a config path (with
    ``spec.overrides``) or a ConfigDict. An inline config of the run's dataset reads the run's
    ``data.data_dir``, so one override moves both."""
    cfg = spec.get("config", None)
    if isinstance(cfg, str):
        cfg = config_lib.load(cfg, spec.get("overrides", ()))
    else:  # a ConfigDict, or a dict once read back from config.json
        cfg = config_lib.derive(ml_collections.ConfigDict(cfg) if isinstance(cfg, dict) else cfg)
        if parent.data.get("data_dir", None) is not None and cfg.data.get("name") == parent.data.get("name"):
            cfg.data.data_dir = parent.data.data_dir
    cfg.train.progress = parent.train.get("progress", True) and cfg.train.get("progress", True)
    return cfg


def ensure_trained(spec, workdir: str, parent) -> str:
    """The exported model of ``spec`` (a teacher or zoo entry), trained first from its config when
    its workdir holds none (:func:`network_config`)."""
    path = network_path(spec, workdir)
    if has_model(path):
        return path
    if spec.get("config", None) is None:
        raise ConfigError(f"network at {path!r} has no exported model and no 'config' to train it; "
                          "train it first or give teachers[i].config")
    train(network_config(spec, parent), path)
    return path


def resolve_teachers(cfg, workdir: str) -> list:
    """The run's teachers, each trained first when its workdir has no exported model. A spec's
    ``arch`` (what ``jka check`` builds before the model exists) must be the loaded model's."""
    dtype = compute_dtype(cfg)
    teachers = []
    for i, spec in enumerate(cfg.get("teachers", ())):
        teacher = load_teacher(ensure_trained(spec, workdir, cfg), spec.get("classes", None), dtype)
        if spec.get("arch", None) and spec["arch"] != teacher.arch:
            raise ConfigError(f"teachers[{i}].arch is {spec['arch']!r} but the model at {teacher.path} is a "
                              f"{teacher.arch!r}; fix teachers[{i}].arch or point teachers[{i}].workdir at a {spec['arch']}")
        teachers.append(teacher)
    return teachers


def zoo_of(cfg, workdir: str) -> list:
    """The models of ``cfg.zoo`` (dicts with ``name``, ``workdir`` and a ``config`` to train them)."""
    specs = cfg.get("zoo", None)
    if not specs:
        raise ConfigError("the config has no 'zoo' list; give zoo=[dict(name=..., workdir=..., config=...), ...]")
    return [zoo_model(ensure_trained(spec, workdir, cfg), spec.get("name", None)) for spec in specs]


# -- train and evaluate -----------------------------------------------------------------------------
def _check(cfg, workdir: Optional[str] = None):
    """What can be checked before any teacher is trained: every value (:func:`validate.check`), the
    algorithm's name, the mesh and batch; and so for each teacher (and zoo entry) to be trained from
    its config: one with an exported model in ``workdir`` is not (without ``workdir``: all are)."""
    validate.check(cfg)
    kind = lookup(cfg.algorithm)
    mesh_lib.check_batch(int(cfg.data.batch_size), mesh_lib.make_mesh(**cfg.train.get("mesh", {})))
    for spec in list(cfg.get("teachers", ())) + list(cfg.get("zoo", None) or ()):
        path = network_path(spec, workdir) if workdir else None
        exported = path and has_model(path)
        if spec.get("config", None) is not None and not exported:
            try:
                _check(network_config(spec, cfg), path)
            except ConfigError as err:
                raise ConfigError(f"the config of the network to train in {spec.get('workdir')!r}: {err}") from None
    return kind


def train(cfg, workdir: str, allow_changed=(), source: str | None = None) -> dict:
    """Train (or resume) the config in ``workdir``; returns the summary it writes (``summary.json``).

    The workdir is checked, locked for this run and bound to the config (``config.json``; a rerun
    with other values is refused unless their keys are in ``allow_changed``) before any work;
    SIGTERM/SIGINT stop the run at a step boundary with a checkpoint (:mod:`jka.train.preemption`)."""
    kind = _check(cfg, workdir)
    check_writable(workdir)
    with lock(workdir), preemption.watch():
        changed = check_config(cfg, workdir, allow_changed)
        if not changed:
            write_config(cfg, workdir, source)
        teachers = resolve_teachers(cfg, workdir)
        if isinstance(kind, Job):
            summary = kind.run(cfg, workdir, teachers)
            loop.write_summary(workdir, summary)
        else:
            summary = run_phase(Phase(kind, cfg, workdir, teachers))
        if changed:
            write_config(cfg, workdir, source)
        return summary


def prepare(cfg, workdir: str):
    """The built run of a single-phase config (:class:`jka.train.loop.Run`: algorithm, state restored
    from the latest checkpoint, shardings), for inspecting a run or timing its step."""
    kind = _check(cfg, workdir)
    if isinstance(kind, Job):
        raise ConfigError(f"{cfg.algorithm!r} is a job of several phases; prepare one of its phases instead")
    algo, mesh = Phase(kind, cfg, workdir, resolve_teachers(cfg, workdir)).build()
    return loop.prepare(algo, cfg, workdir, mesh)


def evaluate(cfg, workdir: str) -> dict:
    """Evaluate the latest checkpoint of the run in ``workdir`` (a job: its final phase)."""
    kind = _check(cfg, workdir)
    if not paths.isdir(workdir):
        raise UserError(f"workdir {workdir!r} does not exist; train first with `jka train CONFIG --workdir {workdir}`")
    teachers = resolve_teachers(cfg, workdir)
    if isinstance(kind, Job):
        if kind.final is None:
            raise UserError(f"{cfg.algorithm!r} trains no student to evaluate; read {workdir}/summary.json")
        return evaluate_phase(kind.final(cfg, workdir, teachers))
    return evaluate_phase(Phase(kind, cfg, workdir, teachers))
