"""Phases: the unit a job is made of. A phase is one training run (:func:`jka.train.loop.fit`) of a
method with a config, a workdir and its teachers; a single-phase ``jka train`` is a phase too. A
phase whose ``summary.json`` says it reached ``train.steps`` is finished and is not run again; an
unfinished one resumes from its latest checkpoint.

The hand-over between phases is ``train.init_from``: the workdir (or model directory) of an
earlier phase whose exported model this phase's state starts from, unless it has a checkpoint of
its own (resume > init_from > fresh), or an option the job computed for the phase.
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
    """A method (``method.program(cfg, teachers, mesh, options)`` builds it), its config, workdir and
    teachers, the options a job computed for it (e.g. which sub-task a component net learns), its
    name within its job, and whether it is the job's final phase (the one ``jka eval`` evaluates)."""

    method: Any
    cfg: Any
    workdir: str
    teachers: Sequence = ()
    options: dict = dataclasses.field(default_factory=dict)
    name: str = ""
    final: bool = False

    def build(self, devices=None):
        """(program, mesh) on ``devices`` (default: this process's); the batch size is checked against
        the mesh first."""
        mesh = mesh_lib.make_mesh(**self.cfg.train.get("mesh", {}), devices=devices)
        mesh_lib.check_batch(int(self.cfg.data.batch_size), mesh)
        return self.method.program(self.cfg, list(self.teachers), mesh, self.options), mesh


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
    program, mesh = phase.build()
    return fit(program, phase.cfg, phase.workdir, mesh)


def evaluate_phase(phase: Phase) -> dict:
    """Evaluate the latest checkpoint of ``phase``."""
    program, mesh = phase.build()
    return evaluate_latest(program, phase.cfg, phase.workdir, mesh)
