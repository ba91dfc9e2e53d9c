"""The single-teacher distillation zoo's extra terms ``L_extra`` (docs/methods.md, "Distillation zoo"),
one formula per file (FitNet's hint is :func:`jka.losses.mse` on the regressed student map). Which
features each reads, its reference weights and its trainable helpers: ``jka.methods.distill.terms``.
"""
from __future__ import annotations

from jka.losses.distill.attention import attention
from jka.losses.distill.cc import cc
from jka.losses.distill.fsp import fsp
from jka.losses.distill.ft import ft
from jka.losses.distill.hcl import hcl
from jka.losses.distill.nst import nst
from jka.losses.distill.pkt import pkt
from jka.losses.distill.rkd import rkd
from jka.losses.distill.sp import sp
from jka.losses.distill.svd import svd
from jka.losses.distill.vid import vid

__all__ = ["attention", "cc", "fsp", "ft", "hcl", "nst", "pkt", "rkd", "sp", "svd", "vid"]
