"""The transferability study (docs/methods.md, "Transferability"): a job that trains the networks of
``transfer_study.zoo`` (``name``, ``task``, ``workdir``, ``config``; a workdir holding a model is kept),
then runs :func:`jka.transfer.study.run_study`: DEPARA and attribution distance from unlabelled probe
images against measured transfer (linear probes). It trains no student; its summary is the study's.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Optional

from jka import paths
from jka.data.relabel import LABELINGS
from jka.errors import ConfigError
from jka.methods.api import Method, all_checks, no_teachers
from jka.settings import ANY, BOOL, TEXT, choice, integer, number, optional, sequence, setting
from jka.train.schema import check_networks
from jka.transfer import plots
from jka.transfer.attribution import METHODS as ATTRIBUTIONS
from jka.transfer.study import run_study
from jka.transfer.zoo import zoo_model


@dataclasses.dataclass(frozen=True)
class Settings:
    probe_size: int = setting(200, integer(1), "unlabelled probe images (digits train split)")
    layer: str = setting("logits", TEXT, "output whose graph stands for a model (g = ‖output‖; edges: its cosines)")
    transfer_layer: str = setting("pooled", TEXT, "features the measured-transfer linear probe is fitted on")
    attribution: str = setting("grad_input", choice("attribution method", ATTRIBUTIONS), "attribution maps")
    lam: float = setting(1.0, number(0), "λ of the DEPARA similarity")
    budget: int = setting(100, integer(1), "labelled target images of the linear probe (measured transfer)")
    repeats: int = setting(5, integer(1), "random budgets averaged per (source, target)")
    layer_repeats: int = setting(10, integer(1), "random budgets per (layer, target) probe")
    permutations: int = setting(2000, integer(1), "permutations of the correlation test")
    k: int = setting(2, integer(1), "graph picture: edges to the k nearest")
    layer_all_sources: bool = setting(False, BOOL, "also score layer selection for every (target, source) pair")
    targets: Optional[list] = setting(None, optional(sequence(TEXT), "None (every zoo network)"),
                                      "zoo names whose tasks are targets")
    zoo: list = setting([], ANY, "the networks: dicts with name, task, workdir and config")


def check_zoo(cfg, s: Settings) -> None:
    """Two zoo networks or more, with unique names and known tasks; the targets among their names."""
    check_networks(s.zoo, "transfer_study.zoo")
    if len(s.zoo) < 2:
        raise ConfigError("transfer_study.zoo needs at least two networks: "
                          "give transfer_study.zoo=[dict(name=..., task=..., workdir=..., config=...), ...]")
    names = [spec.get("name", None) for spec in s.zoo]
    for i, spec in enumerate(s.zoo):
        if not isinstance(names[i], str) or not names[i]:
            raise ConfigError(f"transfer_study.zoo[{i}] needs a 'name' (how the study calls it)")
        if spec.get("task", None) not in LABELINGS:
            raise ConfigError(f"transfer_study.zoo[{i}].task={spec.get('task', None)!r} is not valid: it must be "
                              f"the labeling it learns, one of {', '.join(LABELINGS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"transfer_study.zoo names must be unique, got {names}")
    missing = [t for t in s.targets or () if t not in names]
    if missing:
        raise ConfigError(f"transfer_study.targets {missing} are not zoo names; choose from {names}")


def plan(job):
    """The zoo's trainings (those whose workdir holds no model), then the study."""
    t0 = time.perf_counter()
    if not job.rehearsal:
        plots.require()  # its pictures come last: refuse before the zoo trains
    for spec in job.settings.zoo:
        phase = job.network(spec)
        if phase is not None:
            yield phase
    if job.rehearsal:  # the study itself trains nothing
        return {"step": 0, "algorithm": "transfer_study", "eval": {}}
    zoo = [zoo_model(spec["workdir"] if paths.isabs(spec["workdir"]) else os.path.join(job.workdir, spec["workdir"]),
                     spec["name"]) for spec in job.settings.zoo]
    return run_study(job.cfg, job.workdir, zoo, t0)


METHOD = Method("transfer_study", plan=plan, settings=Settings,
                check=all_checks(no_teachers("transfer_study", "compares the networks of its zoo"), check_zoo),
                summary="label-free transferability (DEPARA, attribution distance) against measured transfer on a zoo",
                trains_student=False)
