"""Phases, what a job is made of: one training run (:func:`jka.train.loop.fit`) of a method with a
config, a workdir and its teachers (a single-phase ``jka train`` is one too). A phase whose
``summary.json`` reached ``train.steps`` is not run again; an unfinished one resumes. Phases hand over
through ``train.init_from`` (an earlier phase's exported model) or an option the job computed.
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
    """A method with its config, workdir, teachers, the options a job computed for it, its name within
    the job, and whether it is the job's final phase (the one ``jka eval`` evaluates)."""

    method: Any
    cfg: Any
    workdir: str
    teachers: Sequence = ()
    options: dict = dataclasses.field(default_factory=dict)
    name: str = ""
    final: bool = False

    def build(self, devices=None):
        """(program, mesh) on ``devices`` (default: this process's), the batch size checked first."""
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
    program, mesh = phase.build()
    return evaluate_latest(program, phase.cfg, phase.workdir, mesh)
