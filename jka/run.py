"""What a user runs, by name, and how: configs completed and checked before any work, teachers
resolved once, single-phase methods and jobs driven over their phases.

A config names a method (``algorithm``, :mod:`jka.methods`); :func:`load` reads the config file (a path
or a shipped config's name), completes it with every default (the base keys of
:mod:`jka.train.schema` and the method's section), applies the overrides and checks the whole of it.
Every network a config names (``teachers``, a study's ``zoo``) is found here: an exported model at
``workdir`` (relative paths resolve against the run's workdir), trained first from its ``config``
when the directory has none.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from typing import Callable, Optional, Sequence

import ml_collections

from jka import config as config_lib
from jka import methods, paths
from jka.errors import ConfigError, UserError
from jka.methods.api import JobContext
from jka.settings import defaults, is_dict
from jka.train import loop, mesh as mesh_lib, preemption, schema
from jka.train.export import has_model
from jka.train.phases import Phase, evaluate_phase, finished, run_phase
from jka.train.teachers import compute_dtype, load_teacher
from jka.train.workdir import as_found_on_refusal, check_config, check_directory, check_named, lock, write_config
from jka.transfer.zoo import zoo_model

log = logging.getLogger("jka")


# -- configs ----------------------------------------------------------------------------------------
def _fill(node, values: dict) -> None:
    for key, value in values.items():
        if key not in node:
            node[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and value and is_dict(node[key]):
            _fill(node[key], value)


def complete(cfg) -> ml_collections.ConfigDict:
    """``cfg`` with every key a run reads: the base keys' defaults and, for the method it names, the
    method's section with its defaults (so every key can be overridden); the same for the configs of
    the networks it trains first. Values it gives are kept; nothing is checked here."""
    _fill(cfg, defaults(schema.Base))
    method = methods.METHODS.get(cfg.algorithm)
    if method is not None and method.key:
        if method.key not in cfg or cfg[method.key] is None:
            cfg[method.key] = {}
        _fill(cfg[method.key], defaults(method.settings))
    for spec in networks(cfg):
        if isinstance(spec.get("config", None), ml_collections.ConfigDict):
            complete(spec["config"])
    return cfg


def load(path: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """The config at ``path`` (a file, or a shipped config's name: ``digits/kd``; ``:args`` select a
    variant), completed (:func:`complete`), with ``overrides`` applied."""
    return config_lib.apply_overrides(complete(config_lib.load_config_file(path)), overrides)


def networks(cfg) -> list:
    """The entries of the networks ``cfg`` names: its teachers and a study's zoo."""
    method = methods.METHODS.get(cfg.get("algorithm", ""))
    zoo = cfg[method.key].get("zoo", None) if method and method.key and is_dict(cfg.get(method.key)) else None
    return list(cfg.get("teachers", None) or ()) + list(zoo or ())


def validate(cfg):
    """Every value of ``cfg`` checked (base keys, the method's section, the method's config-only
    checks); returns the method. One ConfigError for the first problem."""
    method = methods.get(cfg.get("algorithm", "supervised"))
    schema.check(cfg, method.key)
    method.validate(cfg)
    return method


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
        cfg = load(cfg, spec.get("overrides", ()))
    else:  # a ConfigDict, or a dict once read back from config.json
        cfg = complete(config_lib.derive(ml_collections.ConfigDict(cfg) if isinstance(cfg, dict) else cfg))
        if parent.data.get("data_dir", None) is not None and cfg.data.get("name") == parent.data.get("name"):
            cfg.data.data_dir = parent.data.data_dir
    cfg.train.progress = parent.train.get("progress", True) and cfg.train.get("progress", True)
    return cfg


def ensure_trained(spec, workdir: str, parent) -> str:
    """The exported model of ``spec`` (a teacher or zoo entry), trained first from its config if missing."""
    path = network_path(spec, workdir)
    if not has_model(path):
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
        if spec.get("config", None) is not None:
            _warn_if_not_as_configured(f"teachers[{i}]", teacher, network_config(spec, cfg))
        if spec.get("arch", None) and spec["arch"] != teacher.arch:
            raise ConfigError(f"teachers[{i}].arch is {spec['arch']!r} but the model at {teacher.path} is a "
                              f"{teacher.arch!r}; fix teachers[{i}].arch or point teachers[{i}].workdir at a {spec['arch']}")
        teachers.append(teacher)
    return teachers


def _warn_if_not_as_configured(where: str, teacher, net_cfg) -> None:
    """Say so when a network's exported model is not what its config would train (another architecture
    or options): the model found is used (it may have been trained or converted on purpose)."""
    def plain(kwargs):  # as model.json holds them (lists, not tuples)
        return json.loads(json.dumps(dict(kwargs or {}), default=list))

    want = (net_cfg.model.name, plain(net_cfg.model.get("kwargs", None)))
    if (teacher.arch, plain(teacher.kwargs)) != want:
        log.warning("%s at %s is a %s %s, not the %s %s its config trains: using the model found (delete it to "
                    "train it from %s.config)", where, teacher.path, teacher.arch, plain(teacher.kwargs), want[0],
                    want[1], where)


def check(cfg, workdir: Optional[str] = None):
    """What can be checked before any teacher is trained: every value (:func:`validate`), the mesh
    and batch; and so for each network to be trained from its config (one with an exported model in
    ``workdir`` is not; without ``workdir``: all are). Returns the method."""
    method = validate(cfg)
    mesh_lib.check_batch(int(cfg.data.batch_size), mesh_lib.make_mesh(**cfg.train.get("mesh", {})))
    for spec in networks(cfg):
        path = network_path(spec, workdir) if workdir else None
        exported = path and has_model(path)
        if spec.get("config", None) is not None and not exported:
            try:
                check(network_config(spec, cfg), path)
            except ConfigError as err:
                raise ConfigError(f"the config of the network to train in {spec.get('workdir')!r}: {err}") from None
    return method


# -- jobs -------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Stop:
    """What a phase visitor returns to end a job's walk early, with the walk's result."""

    value: object


def network_phase(spec, workdir: str, parent, teachers: Callable = None):
    """The phase that trains the network entry ``spec`` into its workdir (None when it holds an
    exported model): its config's method, its teachers (``teachers(cfg, path)``, default
    :func:`resolve_teachers`)."""
    path = network_path(spec, workdir)
    if has_model(path):
        return None
    if spec.get("config", None) is None:
        raise ConfigError(f"network at {path!r} has no exported model and no 'config' to train it")
    cfg = network_config(spec, parent)
    method = check(cfg, path)
    if method.is_job:
        raise ConfigError(f"the network in {spec.get('workdir')!r} is trained by the job {cfg.algorithm!r}; "
                          "train it first with `jka train` and point its workdir at the result")
    return Phase(method, cfg, path, (teachers or resolve_teachers)(cfg, path), name=spec.get("name", None) or
                 os.path.basename(path))


def drive(method, cfg, workdir: str, teachers, visit: Callable, rehearsal: bool = False, network: Callable = None):
    """Walk ``method``'s plan: each phase it yields goes to ``visit(phase)``, whose result is sent back
    (a :class:`Stop` ends the walk with its value); returns what the plan returns. ``network(spec)``:
    the phase of a network the plan trains first, to be visited (by default none: the network is
    trained here at once, as a teacher is, by :func:`ensure_trained`)."""
    network = network or (lambda spec: ensure_trained(spec, workdir, cfg) and None)
    plan = method.plan(JobContext(cfg, method.read(cfg), workdir, list(teachers), rehearsal, network))
    result = None
    while True:
        try:
            phase = plan.send(result)
        except StopIteration as end:
            return end.value
        result = visit(phase)
        if isinstance(result, Stop):
            plan.close()
            return result.value


# -- train and evaluate -----------------------------------------------------------------------------
def train(cfg, workdir: str, allow_changed=(), source: str | None = None) -> dict:
    """Train (or resume) the config in ``workdir``; returns the summary it writes (``summary.json``).
    Before any work every value is checked and the workdir checked, locked and bound to the config
    (``config.json``: a rerun with other values is refused unless their keys are in ``allow_changed``);
    SIGTERM/SIGINT stop the run at a step boundary with a checkpoint (:mod:`jka.train.preemption`)."""
    method = check(cfg, workdir)
    with as_found_on_refusal(workdir):  # the workdir's location is checked first, once
        check_directory(workdir)
        with lock(workdir), preemption.watch():
            changed = check_config(cfg, workdir, allow_changed)
            if not changed:
                write_config(cfg, workdir, source)
            teachers = resolve_teachers(cfg, workdir)
            if method.is_job:
                summary = drive(method, cfg, workdir, teachers, run_phase)
                loop.write_summary(workdir, summary)
            else:
                summary = run_phase(Phase(method, cfg, workdir, teachers))
            if changed:
                write_config(cfg, workdir, source)
            return summary


def prepare(cfg, workdir: str):
    """The built run of a single-phase config (:class:`jka.train.loop.Run`: program, state restored
    from the latest checkpoint, shardings), for inspecting a run or timing its step."""
    method = check(cfg, workdir)
    if method.is_job:
        raise ConfigError(f"{cfg.algorithm!r} is a job of several phases; prepare one of its phases instead")
    program, mesh = Phase(method, cfg, workdir, resolve_teachers(cfg, workdir)).build()
    return loop.prepare(program, cfg, workdir, mesh)


def evaluate(cfg, workdir: str) -> dict:
    """Evaluate the latest checkpoint of the run in ``workdir`` (a job: its final phase)."""
    method = check(cfg, workdir)
    check_named(workdir)
    if not paths.isdir(workdir):
        raise UserError(f"workdir {workdir!r} does not exist; train first with `jka train CONFIG --workdir {workdir}`")
    if method.is_job and not method.trains_student:
        raise UserError(f"{cfg.algorithm!r} trains no student to evaluate; read {workdir}/summary.json")
    teachers = resolve_teachers(cfg, workdir)
    if not method.is_job:
        return evaluate_phase(Phase(method, cfg, workdir, teachers))

    def visit(phase):
        if phase.final:
            return Stop(evaluate_phase(phase))
        done = finished(phase.workdir, int(phase.cfg.train.steps))
        if done is None:
            raise UserError(f"the job has not finished its phase {phase.name!r} ({phase.workdir}); run it to the end "
                            f"first with `jka train CONFIG --workdir {workdir}`")
        return done

    return drive(method, cfg, workdir, teachers, visit)


def zoo_of(cfg, workdir: str) -> list:
    """The models of a study's ``zoo`` (dicts with ``name``, ``workdir`` and a ``config`` to train
    them), trained first where missing."""
    specs = networks(cfg)[len(cfg.get("teachers", None) or ()):]
    if not specs:
        raise ConfigError("the config has no zoo; give transfer_study.zoo=[dict(name=..., workdir=..., config=...), ...]")
    return [zoo_model(ensure_trained(spec, workdir, cfg), spec.get("name", None)) for spec in specs]
