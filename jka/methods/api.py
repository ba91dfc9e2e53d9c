"""What a method is: a :class:`Method`, one object in one file: its name, its settings (a dataclass: every
key of ``cfg.<section>`` with its default, :mod:`jka.settings`), ``check(cfg, settings)`` (what the config
alone shows wrong, refused before any teacher trains), and ``build(Context) -> Program`` (a single
phase) or ``plan(JobContext)`` (a job).

A job's plan yields :class:`~jka.train.phases.Phase` objects and receives each one's summary back
(``summary = yield phase``); it returns the job's summary. ``jka eval`` walks the phases to the one marked
``final``, ``jka check`` rehearses each (``job.rehearsal``: what a job computes between phases from
trained networks is stood in for).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

from jka.errors import ConfigError
from jka.settings import read
from jka.train import mesh as mesh_lib
from jka.train.program import Program
from jka.train.teachers import compute_dtype


@dataclasses.dataclass(frozen=True)
class Context:
    """What a method is built from (``options``: what a job computed for this phase)."""

    cfg: Any
    settings: Any
    teachers: Sequence
    mesh: Any = None
    options: dict = dataclasses.field(default_factory=dict)

    @property
    def dtype(self):
        return compute_dtype(self.cfg)

    @property
    def steps(self) -> int:
        return int(self.cfg.train.steps)

    def shard(self, x):
        """Split a batch made inside the step over the devices (``mesh.constrain_batch``)."""
        return mesh_lib.constrain_batch(x, self.mesh)


@dataclasses.dataclass(frozen=True)
class JobContext:
    """What a job's plan runs with; ``network(spec)``: the phase training a network entry, None if it exists."""

    cfg: Any
    settings: Any
    workdir: str
    teachers: Sequence
    rehearsal: bool = False
    network: Optional[Callable] = None


@dataclasses.dataclass(frozen=True)
class Method:
    """One method (module docstring); ``section``: its settings' config key (default: its name)."""

    name: str
    build: Optional[Callable[[Context], Program]] = None
    plan: Optional[Callable[[JobContext], Any]] = None
    settings: Optional[type] = None
    section: Optional[str] = None
    check: Optional[Callable] = None
    summary: str = ""            # one line: what it does
    trains_student: bool = True  # a job that ends in a student (its plan marks the phase `jka eval` reads)
    h100_mfu: float = 0.15       # the model FLOP utilisation its step reached on an H100 (jka check's projection)

    @property
    def key(self) -> Optional[str]:
        """The config section it reads (None: none)."""
        return None if self.settings is None else (self.section or self.name)

    @property
    def is_job(self) -> bool:
        return self.plan is not None

    def read(self, cfg):
        """``cfg.<key>`` as the settings dataclass (every default filled in, every value checked)."""
        if self.settings is None:
            return None
        return read(self.settings, cfg.get(self.key, None), self.key)

    def validate(self, cfg):
        """The settings, read and checked with the method's config-only checks."""
        settings = self.read(cfg)
        if self.check is not None:
            self.check(cfg, settings)
        return settings

    def program(self, cfg, teachers, mesh, options=None) -> Program:
        """This method built for one phase (what :class:`~jka.train.phases.Phase` calls)."""
        if self.build is None:
            raise ConfigError(f"{self.name!r} is a job of several phases; build one of its phases instead")
        return self.build(Context(cfg, self.read(cfg), list(teachers), mesh, dict(options or {})))


def need_teachers(method: str, low: int = 1, high: int | None = None):
    """A ``check`` that ``cfg.teachers`` has ``low``..``high`` entries."""
    def check(cfg, settings):
        n = len(cfg.get("teachers", ()) or ())
        if n < low or (high is not None and n > high):
            want = f"exactly {low}" if high == low else f"at least {low}" if high is None else f"{low} to {high}"
            raise ConfigError(f"{method} needs {want} entr{'y' if want.endswith(' 1') else 'ies'} in teachers "
                              f"(got {n})")
    return check


def no_teachers(method: str, why: str):
    def check(cfg, settings):
        if cfg.get("teachers", None):
            raise ConfigError(f"{method} {why}; remove the teachers")
    return check


def all_checks(*checks):
    """One ``check`` running several in order."""
    def check(cfg, settings):
        for c in checks:
            c(cfg, settings)
    return check
