"""Single-teacher distillation zoo (docs/methods.md, "Distillation zoo"):
``L = α kd(s, t, T) + β CE(s, y) + γ L_extra``.

The extra term is chosen by name (``distill.method``: kd, hint, at, sp, cc, vid, rkd, pkt, nst,
svd, fsp, ft; see :mod:`jka.losses.distill`); ``distill.alpha/beta/gamma`` default to the
reference weights of that term. Its trainable helpers (regressors, adapters, embedders, VID's σ, the
factor-transfer paraphraser/translator) train with the student in one state whose params are
``{'student': ..., 'aux': ...}``. The teacher is ``teachers[0]``, over the same classes.

Feature stages are picked by name from the models' ``features`` dicts: the stages are every key but
``'pooled'`` and ``'stem'`` in natural order (``block1..3``, ``layer1..4``); when the two networks
have different numbers of stages their last ones are paired. ``distill.student_stages`` /
``distill.teacher_stages`` (lists of names) override the choice.
"""
from __future__ import annotations

import re

import jax

from jka import losses
from jka.algorithms.base import Algorithm
from jka.algorithms.distill.modules import build_extra
from jka.config import section
from jka.errors import ConfigError
from jka.losses import distill as terms
from jka.train.state import TrainState, make_optimizer


# ``cfg.distill``: the zoo term, its weights (None: the term's reference defaults) and the stages.
DISTILL_DEFAULTS = dict(method="kd", alpha=None, beta=None, gamma=None, student_stages=None, teacher_stages=None,
                        cc_normalise=False)


def _natural(name: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def stage_names(feats) -> list[str]:
    """Spatial stages of a features dict, in order (``'stem'`` and ``'pooled'`` left out)."""
    return sorted((k for k in feats if k not in ("pooled", "stem")), key=_natural)


def select_stages(where: str, s_feats, t_feats, s_override=None, t_override=None):
    """(student names, teacher names) that the term of kind ``where`` compares, pairwise."""
    if where == "none":
        return [], []
    if s_override or t_override:
        if not (s_override and t_override) or len(s_override) != len(t_override):
            raise ConfigError("set distill.student_stages and distill.teacher_stages together, "
                              "with the same number of names")
        for names, feats, who in ((s_override, s_feats, "student"), (t_override, t_feats, "teacher")):
            for n in names:
                if n not in feats:
                    raise ConfigError(f"distill.{who}_stages: the {who} has no feature {n!r}; "
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


class Distill(Algorithm):
    name = "distill"

    def __init__(self, cfg, teachers):
        if len(teachers) != 1:
            raise ConfigError(f"algorithm 'distill' needs exactly one entry in teachers (got {len(teachers)})")
        dcfg = section(cfg, "distill", DISTILL_DEFAULTS, "distill")
        self.term = terms.get(dcfg.method)
        weights = [dcfg[k] for k in ("alpha", "beta", "gamma")]
        self.alpha, self.beta, self.gamma = (float(d if w is None else w) for w, d in zip(weights, self.term.defaults))
        self.T = float(cfg.loss.get("T", 4.0))
        self.uses_labels = self.beta > 0
        self.stage_override = (dcfg.student_stages, dcfg.teacher_stages)
        self.cc_normalise = bool(dcfg.cc_normalise)
        classes = cfg.data.get("classes", None)
        if classes is not None and [int(c) for c in classes] != [int(c) for c in teachers[0].classes]:
            raise ConfigError(f"data.classes {list(classes)} differ from the teacher's classes "
                              f"{list(teachers[0].classes)}; leave data.classes unset for distill")
        super().__init__(cfg, teachers)

    def default_student_classes(self, cfg, num_classes):
        return list(self.teachers[0].classes)

    def init(self, rng, batch):
        k_init, k_aux, k_state = jax.random.split(rng, 3)
        x = self.prepare(k_init, batch["image"][:4], augment=False)
        teacher = self.teachers[0]
        variables = self.student.init(k_init, x, train=False)
        _, s_feats = self.student.apply(variables, x, train=False)
        _, t_feats = teacher(teacher.variables, x)
        self.s_names, self.t_names = select_stages(self.term.where, s_feats, t_feats, *self.stage_override)
        fs, ft = [s_feats[n] for n in self.s_names], [t_feats[n] for n in self.t_names]
        self.extra = build_extra(self.term.name, [f.shape[1:] for f in ft], self.cc_normalise)
        aux = self.extra.init(k_aux, fs, ft, train=False)
        params = {"student": variables["params"], "aux": aux.get("params", {})}
        batch_stats = {"student": variables.get("batch_stats", {}), "aux": aux.get("batch_stats", {})}
        tx = make_optimizer(self.cfg.optim, self.total_steps)
        return TrainState.create(params, tx, k_state, batch_stats)

    def loss(self, params, batch_stats, teacher_vars, x, batch, rng):
        t, t_feats = self.teachers[0](teacher_vars[0], x)
        s, s_feats, bs_student = self.apply_student(params["student"], batch_stats["student"], x, train=True)
        fs, ft = [s_feats[n] for n in self.s_names], [t_feats[n] for n in self.t_names]
        out, upd = self.extra.apply({"params": params["aux"], "batch_stats": batch_stats["aux"]}, fs, ft,
                                    train=True, mutable=["batch_stats"])
        l_kd = losses.kd(s, t, self.T)
        metrics = {"kd": l_kd}
        if self.term.fn is not None:
            metrics[f"extra_{self.term.name}"] = out["extra"]
        loss = self.alpha * l_kd + self.gamma * out["extra"]
        if self.beta > 0:
            ce = losses.cross_entropy(s, batch["label"])
            loss = loss + self.beta * ce
            metrics["ce"] = ce
        if "aux" in out:
            loss = loss + out["aux"]
            metrics["aux"] = out["aux"]
        new_bs = {"student": bs_student, "aux": upd.get("batch_stats", batch_stats["aux"])}
        return loss, (new_bs, metrics)
