"""The phases of every job, in the order ``jka train`` runs them, for a rehearsal.

A plan, ``(cfg, workdir, teachers, memo, draw)``, is a generator of ``(name, Phase, handed over)`` built
with the job module's own phase constructors. It is advanced only after the previous phase was
rehearsed and, when a later phase starts from it (``handed over``), its (random, untrained) model
exported into that phase's workdir: a phase that starts from an earlier one (``train.init_from``,
the components of adaptive amalgamation, the generator and earlier blocks of data-free
amalgamation) loads a model of exactly the shapes the real run hands it. What a job computes
between phases from trained networks is stood in for: adaptive's calibration is the identity (its
shape), task branching's selected points are the least shared ones (point 0 for every task: the
most work per step, so the projection is an upper bound). The transfer study's phases are its
zoo's trainings; its analysis (graphs, probes) trains nothing and is not rehearsed.
"""
from __future__ import annotations

import os

from jka import run
from jka.algorithms.amalgamation import adaptive, branching
from jka.algorithms.datafree.amalgamation import job as datafree_amalgamation
from jka.algorithms.datafree.amalgamation.phases import DualGAN, settings
from jka.algorithms.distill import netgraft
from jka.check.standin import data_shape, random_teachers, standing_in
from jka.config import derive
from jka.errors import ConfigError
from jka.models.small_cnn import NUM_BLOCKS
from jka.train.export import load_model
from jka.train.phases import Phase


def adaptive_phases(cfg, workdir, teachers, memo, draw):
    teacher_classes, subtasks = adaptive._checked(cfg, teachers)
    component_cfg = derive(cfg, **{"train.steps": int(adaptive.amal_of(cfg).component_steps or cfg.train.steps)})
    identity = [(1.0, 0.0)] * len(teachers)
    for g, classes in enumerate(subtasks):
        yield f"component_{g}", Phase(adaptive.AdaptiveComponent, component_cfg, os.path.join(workdir, f"component_{g}"),
                                      teachers, dict(subtask=classes, calibration=identity)), True
    yield "student", adaptive._student_phase(cfg, workdir, subtasks, teacher_classes), False


def branching_phases(cfg, workdir, teachers, memo, draw):
    search, _ = branching._search_steps(cfg)
    yield "search", Phase(branching.BranchyDistill, derive(cfg, **{"train.steps": search}),
                          os.path.join(workdir, "search"), teachers), True
    yield "student", branching._student_phase(cfg, workdir, teachers, [0] * len(teachers)), False


def netgraft_phases(cfg, workdir, teachers, memo, draw):
    if len(teachers) != 1:
        raise ConfigError("netgraft needs exactly one entry in teachers (the VGG16 teacher)")
    names = [name for name, _, _ in netgraft.phases()]
    for i, name in enumerate(names):
        yield name, netgraft._phase(cfg, workdir, teachers[0], i), i + 1 < len(names)


def datafree_amalgamation_phases(cfg, workdir, teachers, memo, draw):
    s, base = settings(cfg), datafree_amalgamation._base(cfg)
    assemble = int(s.assemble_steps) > 0
    yield "gan", Phase(DualGAN, derive(base, **{"train.steps": int(s.gan_steps)}), os.path.join(workdir, "gan"),
                       teachers), True
    gan, _ = load_model(os.path.join(workdir, "gan"))
    for b in range(1, NUM_BLOCKS + 1):
        yield f"dual_{b}", datafree_amalgamation._dual_phase(base, workdir, teachers, b, gan), b < NUM_BLOCKS or assemble
    if assemble:
        yield "assemble", datafree_amalgamation._assemble_phase(base, workdir, teachers, gan), False


def transfer_study_phases(cfg, workdir, teachers, memo, draw):
    if not cfg.get("zoo", None):
        raise ConfigError("the config has no 'zoo' list; give zoo=[dict(name=..., workdir=..., config=...), ...]")
    for i, spec in enumerate(cfg.zoo):
        if spec.get("config", None) is None:
            continue  # an exported model: nothing to train
        sub = run.network_config(spec, cfg)
        yield spec.get("name", None) or f"zoo{i}", single_phase(sub, os.path.join(workdir, f"zoo{i}"), memo=memo,
                                                                  draw=draw)[0], False


def single_phase(cfg, workdir: str, teacher_workdir: str | None = None, memo: dict | None = None, draw: bool = True):
    """(the Phase ``jka train`` runs for a single-phase ``cfg``, where its teachers' archs were read),
    its teachers random."""
    kind = run.lookup(cfg.algorithm)
    if isinstance(kind, run.Job):
        raise ConfigError(f"{cfg.algorithm!r} is a job; a job's phase must be a single-phase config")
    with standing_in(cfg, memo=memo):
        shape, n = data_shape(cfg)
    teachers, found = random_teachers(cfg, teacher_workdir, shape, n, memo, draw)
    return Phase(kind, cfg, workdir, teachers), found


PLANS = {"adaptive": adaptive_phases, "branching": branching_phases, "netgraft": netgraft_phases,
         "datafree_amalgamation": datafree_amalgamation_phases, "transfer_study": transfer_study_phases}
