"""What the training loop runs: a :class:`Program`, one phase of a method built for its config,
teachers and mesh (``jka.methods``). The loop reads these fields and sets nothing on them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence


@dataclasses.dataclass(frozen=True)
class Split:
    """A run's data: the train and test sets (labels in the student's output order), the
    normalisation and the dataset classes of the student's outputs."""

    train: Any
    test: Any
    mean: tuple
    std: tuple
    classes: list

    @property
    def image_shape(self) -> tuple:
        return tuple(self.train.image_shape)

    def input_info(self) -> dict:
        """The ``model.json`` fields that say what input an exported model expects."""
        return {"mean": list(self.mean), "std": list(self.std), "image_shape": list(self.image_shape)}


@dataclasses.dataclass(frozen=True)
class Exported:
    """A trained network as ``WORKDIR/model`` holds it."""

    arch: str
    num_classes: int
    variables: dict
    info: dict  # model.json fields besides arch and num_classes


@dataclasses.dataclass(frozen=True)
class EvalContext:
    """What an evaluation may use besides the state: the mesh, the workdir (sample grids), the metric
    writer (pictures), the step."""

    mesh: Any
    workdir: Optional[str] = None
    writer: Any = None
    step: int = 0


@dataclasses.dataclass(frozen=True)
class Program:
    """One phase of a method, built: everything the loop needs (:func:`jka.train.loop.fit`)."""

    name: str
    data: Split
    teachers: Sequence
    batches: Any                    # step-indexed host batches: host_batch(step), device_batch(step, sharding)
    steps: int                      # loop steps (a data-free step is a unit or a round)
    init: Callable                  # (rng, first host batch) -> State
    step: Callable                  # (state, teacher_vars, batch) -> (state, metrics); pure, compiled once
    evaluate: Callable              # (state, EvalContext) -> dict
    export: Callable                # (state) -> Exported
    learning_rate: Callable         # loop step -> the student's learning rate (logged)
    uses_labels: bool = False
    start_from: Optional[Callable] = None  # (state, variables, info) -> state, for train.init_from
    details: dict = dataclasses.field(default_factory=dict)  # the student's arch/kwargs (jka check)
