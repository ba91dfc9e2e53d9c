"""The single-teacher distillation zoo's extra terms ``L_extra`` (docs/methods.md, "Distillation zoo"),
one file each (FitNet's hint is :func:`jka.losses.mse` on the regressed student map).

``TERMS`` maps a method name to its :class:`Term`: the pure loss function, the default weights
``(α, β, γ)`` of ``L = α kd(s, t, T) + β CE(s, y) + γ L_extra`` and which features it reads
(``where``): ``'middle'`` stage, all ``'stages'``, the ``'last'`` stage, ``'pooled'`` vectors,
or ``'stem+stages'`` (the stem too, when the model has one).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from jka.errors import unknown_choice
from jka.losses import mse
from jka.losses.distill.attention import attention
from jka.losses.distill.cc import cc
from jka.losses.distill.fsp import fsp
from jka.losses.distill.ft import ft
from jka.losses.distill.nst import nst
from jka.losses.distill.pkt import pkt
from jka.losses.distill.rkd import rkd
from jka.losses.distill.sp import sp
from jka.losses.distill.svd import svd
from jka.losses.distill.vid import vid


@dataclasses.dataclass(frozen=True)
class Term:
    name: str
    fn: Optional[Callable]
    defaults: tuple  # (alpha, beta, gamma)
    where: str


TERMS = {t.name: t for t in (
    Term("kd", None, (0.9, 0.1, 0.0), "none"),
    Term("hint", mse, (0.9, 0.1, 100.0), "middle"),
    Term("at", attention, (1.0, 0.1, 1000.0), "stages"),
    Term("sp", sp, (0.9, 0.1, 3000.0), "last"),
    Term("cc", cc, (0.9, 0.1, 0.02), "pooled"),
    Term("vid", vid, (0.0, 1.0, 1.0), "stages"),
    Term("rkd", rkd, (0.9, 0.1, 1.0), "pooled"),
    Term("pkt", pkt, (0.9, 0.1, 30000.0), "pooled"),
    Term("nst", nst, (0.9, 0.1, 50.0), "stages"),
    Term("svd", svd, (0.9, 0.1, 10.0), "stages"),
    # The reference table leaves fsp/ft open. Chosen here (not from a table): fsp γ = 1, ft γ = 200; both trained
    # jointly from the start (the originals pre-train FSP / the paraphraser in a first phase).
    Term("fsp", fsp, (0.9, 0.1, 1.0), "stem+stages"),
    Term("ft", ft, (0.9, 0.1, 200.0), "last"),
)}
ALIASES = {"attention": "at", "fitnet": "hint"}


def get(name: str) -> Term:
    key = ALIASES.get(name, name)
    if key not in TERMS:
        raise unknown_choice("distillation method (distill.method)", name, list(TERMS) + list(ALIASES))
    return TERMS[key]


__all__ = ["TERMS", "Term", "get", "attention", "cc", "fsp", "ft", "nst", "pkt", "rkd", "sp", "svd", "vid"]
