"""Phases: the unit a job is made of. A phase is one training run (:func:`jka.train.loop.fit`) of an
algorithm class with a config, a workdir and its teachers; a single-phase ``jka train`` is a phase
too. A phase whose ``summary.json`` says it reached ``train.steps`` is finished and is not run
again; an unfinished one resumes from its latest checkpoint.

The hand-over between phases is ``train.init_from``: the workdir (or model directory) of an
earlier phase whose exported model this phase's state starts from, unless it has a checkpoint of
its own (resume > init_from > fresh).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

from jka import paths
from jka.train import mesh as mesh_lib
from jka.train.loop import evaluate_latest, fit


@dataclasses.dataclass
class Phase:
    """An algorithm class, its config, its workdir, its teachers and the constructor options a job
    computed for it (e.g. which sub-task a component net learns)."""

    algorithm: type
    cfg: Any
    workdir: str
    teachers: Sequence = ()
    options: dict = dataclasses.field(default_factory=dict)

    def build(self):
        """(algorithm object, mesh); the batch size is checked against the mesh first."""
        mesh = mesh_lib.make_mesh(**self.cfg.train.get("mesh", {}))
        mesh_lib.check_batch(int(self.cfg.data.batch_size), mesh)
        return self.algorithm(self.cfg, list(self.teachers), **self.options), mesh


def finished(workdir: str, steps: int) -> dict | None:
    """The summary of a phase in ``workdir`` that reached ``steps`` steps, else None."""
    path = os.path.join(workdir, "summary.json")
    if paths.isfile(path):
        summary = paths.read_json(path)
        if summary.get("step") == steps:
            return summary
    return None


def run_phase(phase: Phase) -> dict:
    """Train (or resume) ``phase``; a finished phase returns its summary without running."""
    done = finished(phase.workdir, int(phase.cfg.train.steps))
    if done is not None:
        return done
    algo, mesh = phase.build()
    return fit(algo, phase.cfg, phase.workdir, mesh)


def evaluate_phase(phase: Phase) -> dict:
    """Evaluate the latest checkpoint of ``phase``."""
    algo, mesh = phase.build()
    return evaluate_latest(algo, phase.cfg, phase.workdir, mesh)
