"""Single-teacher distillation zoo (docs/methods.md, "Distillation zoo"):
``L = α kd(s, t, T) + β CE(s, y) + γ L_extra``.

The extra term is ``distill.method`` (:data:`.terms.TERMS`), its weights default to its reference ones,
its helpers train with the student (parts ``'student'`` and ``'aux'``). The stages are the features but
``'pooled'`` and ``'stem'`` in natural order, the last ones paired when the counts differ, unless
``distill.student_stages`` / ``distill.teacher_stages`` name them.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, NamedTuple, Optional

from jka import losses
from jka.errors import ConfigError
from jka.methods import common
from jka.methods.api import Method, need_teachers
from jka.methods.distill import terms
from jka.settings import BOOL, TEXT, choice, number, optional, sequence, setting
from jka.train.program import Split

WEIGHT = optional(number(0), "None (the term's reference weight)")
STAGES = optional(sequence(TEXT), "None (chosen by the term)")


@dataclasses.dataclass(frozen=True)
class Settings:
    method: str = setting("kd", choice("distillation method (distill.method)", terms.NAMES), "the extra term")
    T: float = setting(4.0, number(0, low_open=True), "temperature of kd(s, t, T)")
    alpha: Optional[float] = setting(None, WEIGHT, "weight of kd")
    beta: Optional[float] = setting(None, WEIGHT, "weight of CE on labels")
    gamma: Optional[float] = setting(None, WEIGHT, "weight of the extra term")
    student_stages: Optional[list] = setting(None, STAGES, "student features the term compares")
    teacher_stages: Optional[list] = setting(None, STAGES, "teacher features, pairwise with student_stages")
    cc_normalise: bool = setting(False, BOOL, "CC on L2-normalised embeddings (jka's variant)")
    logit_std: bool = setting(False, BOOL, "standardise both logits per sample before kd (Sun et al., CVPR 2024)")


def weights(s: Settings) -> tuple:
    """(α, β, γ): the settings', else the term's reference weights."""
    defaults = terms.get(s.method).defaults
    return tuple(float(d if w is None else w) for w, d in zip((s.alpha, s.beta, s.gamma), defaults))


def _natural(name: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def stage_names(feats) -> list[str]:
    """Spatial stages of a features dict, in order (``'stem'`` and ``'pooled'`` left out)."""
    return sorted((k for k in feats if k not in ("pooled", "stem")), key=_natural)


def select_stages(where: str, s_feats, t_feats, s_override=None, t_override=None, section: str = "distill"):
    """(student names, teacher names) that a term of kind ``where`` compares pairwise."""
    if where == "none":
        return [], []
    if s_override or t_override:
        if not (s_override and t_override) or len(s_override) != len(t_override):
            raise ConfigError(f"set {section}.student_stages and {section}.teacher_stages together, "
                              "with the same number of names")
        for names, feats, who in ((s_override, s_feats, "student"), (t_override, t_feats, "teacher")):
            for n in names:
                if n not in feats:
                    raise ConfigError(f"{section}.{who}_stages: the {who} has no feature {n!r}; "
                                      f"it has {', '.join(sorted(feats))}")
        return list(s_override), list(t_override)
    if where == "pooled":
        return ["pooled"], ["pooled"]
    s, t = stage_names(s_feats), stage_names(t_feats)
    n = min(len(s), len(t))
    if n == 0:
        raise ConfigError("the student or the teacher has no spatial feature stages to distill from")
    s, t = s[len(s) - n:], t[len(t) - n:]
    if where == "middle":
        return [s[(n - 1) // 2]], [t[(n - 1) // 2]]
    if where == "last":
        return [s[-1]], [t[-1]]
    if where == "stem+stages" and "stem" in s_feats and "stem" in t_feats:
        return ["stem"] + s, ["stem"] + t
    return s, t


class Parts(NamedTuple):
    """A built zoo run (``module``: the term's, the ``'aux'`` part)."""

    net: common.Net
    data: Split
    term: terms.Term
    weights: tuple
    s_names: list
    t_names: list
    module: Any
    logit_std: bool = False


def parts(ctx) -> Parts:
    s, teacher = ctx.settings, ctx.teachers[0]
    term = terms.get(s.method)
    classes = ctx.cfg.data.get("classes", None)
    if classes is not None and [int(c) for c in classes] != [int(c) for c in teacher.classes]:
        raise ConfigError(f"data.classes {list(classes)} differ from the teacher's classes "
                          f"{list(teacher.classes)}; leave data.classes unset for distill")
    data = common.split(ctx.cfg, teacher.classes)
    net = common.student_net(ctx, len(data.classes))
    s_shapes, (t_shapes,) = common.feature_shapes(net, [teacher], data.image_shape, ctx.dtype)
    s_names, t_names = select_stages(term.where, s_shapes, t_shapes, s.student_stages, s.teacher_stages)
    module = terms.build_extra(term.name, [t_shapes[n].shape[1:] for n in t_names], s.cc_normalise)
    return Parts(net, data, term, weights(s), s_names, t_names, module, s.logit_std)


def loss(p: Parts, T: float, teacher, params, batch_stats, teacher_vars, x, batch):
    """``α kd(s, t, T) + β CE(s, y) + γ L_extra`` (+ the helpers' own loss, FT's reconstruction)."""
    alpha, beta, gamma = p.weights
    t, t_feats = teacher(teacher_vars[0], x)
    logits, s_feats, bs_student = p.net.forward(params, batch_stats, x, train=True)
    fs, ft = [s_feats[n] for n in p.s_names], [t_feats[n] for n in p.t_names]
    out, upd = p.module.apply({"params": params["aux"], "batch_stats": batch_stats["aux"]}, fs, ft,
                              train=True, mutable=["batch_stats"])
    l_kd = losses.kd(*losses.standardized(p.logit_std, logits, t), T)
    metrics = {"kd": l_kd}
    if p.term.fn is not None:
        metrics[f"extra_{p.term.name}"] = out["extra"]
    total = alpha * l_kd + gamma * out["extra"]
    if beta > 0:
        metrics["ce"] = ce = losses.cross_entropy(logits, batch["label"])
        total = total + beta * ce
    if "aux" in out:
        total = total + out["aux"]
        metrics["aux"] = out["aux"]
    return total, ({"student": bs_student, "aux": upd.get("batch_stats", batch_stats["aux"])}, metrics)


def build(ctx):
    p, teacher = parts(ctx), ctx.teachers[0]

    def extra(rng, x, student_vars):
        _, s_feats = p.net.module.apply(student_vars, x, train=False)
        _, t_feats = teacher(teacher.variables, x)
        return {"aux": p.module.init(rng, [s_feats[n] for n in p.s_names], [t_feats[n] for n in p.t_names],
                                     train=False)}

    def step_loss(params, batch_stats, teacher_vars, x, batch, rng, step):
        return loss(p, ctx.settings.T, teacher, params, batch_stats, teacher_vars, x, batch)

    return common.classifier(ctx, "distill", p.data, p.net, step_loss, uses_labels=p.weights[1] > 0, extra=extra,
                             term=p.term.name)


METHOD = Method("distill", build=build, settings=Settings, check=need_teachers("distill", 1, 1),
                summary="single-teacher distillation with a zoo term (hint, at, sp, cc, vid, rkd, pkt, nst, svd, fsp, ft)",
                h100_mfu=0.163)
