"""ReviewKD, distilling knowledge via knowledge review (docs/methods.md, "ReviewKD"; Chen et al., CVPR 2021).

Each teacher stage is learnt from a fusion of the student's stage at that depth and every deeper one:
the student's levels (spatial stages, then the pooled vector as a 1×1 map) are fused from the deepest
up by attention-based fusion modules (:class:`ABF`, the state's ``'aux'`` part), each output compared
with the teacher's level by the hierarchical context loss (:func:`jka.losses.distill.hcl`):

    L = ce·CE(s, y) + w(e)·weight·HCL,   w(e) = min(e / warmup_epochs, 1)

for the 1-based epoch e. Defaults: the reference CIFAR-100 setting.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jka import losses
from jka.losses import distill as terms
from jka.methods import common
from jka.methods.api import Method, need_teachers
from jka.methods.distill.zoo import STAGES, select_stages
from jka.models.layers import BatchNorm
from jka.settings import BOOL, number, setting
from jka.train.program import Split

MAX_MID = 512  # the reference's cap on the fused width

# PyTorch's kaiming_uniform_(a=1) of the reference ABF convs, and PyTorch's default conv init of the attention conv.
KAIMING_A1 = nn.initializers.variance_scaling(1.0, "fan_in", "uniform")
TORCH_DEFAULT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


@dataclasses.dataclass(frozen=True)
class Settings:
    weight: float = setting(1.0, number(0), "weight of the hierarchical context loss")
    ce: float = setting(1.0, number(0), "weight of CE on labels")
    warmup_epochs: float = setting(20.0, number(0), "epochs over which HCL ramps in as min(e/warmup, 1), e the "
                                                    "1-based epoch (0: full weight from the first step)")
    pooled: bool = setting(True, BOOL, "add the pooled vectors as the deepest level (the reference does)")
    student_stages: Optional[list] = setting(None, STAGES, "student stages fused (default: every spatial stage, "
                                                           "the last ones paired when the counts differ)")
    teacher_stages: Optional[list] = setting(None, STAGES, "teacher stages, pairwise with student_stages")


def nearest(x, h: int, w: int):
    """An NHWC map resized to ``h × w`` by PyTorch's nearest rule: output ``i`` reads input ``floor(i·H/h)``."""
    rows, cols = (np.arange(h) * x.shape[1]) // h, (np.arange(w) * x.shape[2]) // w
    return x[:, rows][:, :, cols]


class ABF(nn.Module):
    """1×1 conv + BN to ``mid``; unless deepest, merged with the deeper fused map (nearest upsampled) by two
    sigmoid attention maps; 3×3 conv + BN to the teacher's level: (that output, the fused map passed up)."""

    mid: int
    out_shape: Sequence[int]  # (H, W, C) of the teacher's level
    fuse: bool

    @nn.compact
    def __call__(self, x, deeper, train: bool):
        bn = lambda name: BatchNorm(use_running_average=not train, name=name)  # noqa: E731
        x = bn("bn1")(nn.Conv(self.mid, (1, 1), use_bias=False, kernel_init=KAIMING_A1, name="conv1")(x))
        if self.fuse:
            y = nearest(deeper, x.shape[1], x.shape[2])
            att = nn.sigmoid(nn.Conv(2, (1, 1), kernel_init=TORCH_DEFAULT, name="att")(jnp.concatenate([x, y], -1)))
            x = x * att[..., :1] + y * att[..., 1:]
        h, w, c = self.out_shape
        if x.shape[1:3] != (h, w):
            x = nearest(x, h, w)
        out = nn.Conv(c, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, kernel_init=KAIMING_A1, name="conv2")(x)
        return bn("bn2")(out), x


class Review(nn.Module):
    """ABFs over the student's levels (shallow → deep), fused from the deepest up; the outputs in level order."""

    t_shapes: Sequence[Sequence[int]]
    mid: int

    @nn.compact
    def __call__(self, fs, train: bool):
        outs, deeper = [], None
        for i in reversed(range(len(fs))):
            abf = ABF(self.mid, tuple(self.t_shapes[i]), fuse=deeper is not None, name=f"abf{i}")
            out, deeper = abf(fs[i].astype(jnp.float32), deeper, train)
            outs.insert(0, out)
        return outs


def levels(feats, names, pooled: bool):
    """The named stages, then (with ``pooled``) the pooled vector as a 1×1 map."""
    maps = [feats[n] for n in names]
    if pooled:
        maps.append(feats["pooled"].reshape(feats["pooled"].shape[0], 1, 1, -1))
    return maps


def level_shapes(shapes, names, pooled: bool) -> list:
    """(H, W, C) of each level of :func:`levels`, from a features dict of shapes."""
    out = [tuple(int(d) for d in shapes[n].shape[1:]) for n in names]
    return out + [(1, 1, int(shapes["pooled"].shape[-1]))] if pooled else out


class Parts(NamedTuple):
    """A built ReviewKD run: the student, its data, the ABF stack and the levels it pairs."""

    net: common.Net
    data: Split
    review: Review
    s_names: list
    t_names: list
    pooled: bool


def parts(ctx) -> Parts:
    s, teacher = ctx.settings, ctx.teachers[0]
    data = common.split(ctx.cfg, teacher.classes)
    net = common.student_net(ctx, len(data.classes))
    s_shapes, (t_shapes,) = common.feature_shapes(net, [teacher], data.image_shape, ctx.dtype)
    s_names, t_names = select_stages("stages", s_shapes, t_shapes, s.student_stages, s.teacher_stages, "reviewkd")
    review = Review(tuple(level_shapes(t_shapes, t_names, s.pooled)),
                    min(MAX_MID, level_shapes(s_shapes, s_names, s.pooled)[-1][-1]))
    return Parts(net, data, review, s_names, t_names, s.pooled)


def loss(p: Parts, s: Settings, teacher, params, batch_stats, teacher_vars, x, batch, warmup=1.0):
    """``ce·CE(s, y) + warmup·weight·HCL(ABF(student levels), teacher levels)``."""
    _, t_feats = teacher(teacher_vars[0], x)
    logits, s_feats, bs_student = p.net.forward(params, batch_stats, x, train=True)
    fused, upd = p.review.apply({"params": params["aux"], "batch_stats": batch_stats["aux"]},
                                levels(s_feats, p.s_names, p.pooled), train=True, mutable=["batch_stats"])
    hcl = terms.hcl(fused, levels(t_feats, p.t_names, p.pooled))
    ce = losses.cross_entropy(logits, batch["label"])
    total = s.ce * ce + warmup * s.weight * hcl
    return total, ({"student": bs_student, "aux": upd["batch_stats"]}, {"hcl": hcl, "ce": ce})


def build(ctx):
    p, s, teacher = parts(ctx), ctx.settings, ctx.teachers[0]
    warmup = common.epoch_warmup(ctx.cfg, p.data, s.warmup_epochs)

    def extra(rng, x, student_vars):
        _, s_feats = p.net.module.apply(student_vars, x, train=False)
        return {"aux": p.review.init(rng, levels(s_feats, p.s_names, p.pooled), train=False)}

    def step_loss(params, batch_stats, teacher_vars, x, batch, rng, step):
        return loss(p, s, teacher, params, batch_stats, teacher_vars, x, batch, warmup(step))

    return common.classifier(ctx, "reviewkd", p.data, p.net, step_loss, uses_labels=True, extra=extra)


METHOD = Method("reviewkd", build=build, settings=Settings, check=need_teachers("reviewkd", 1, 1),
                summary="ReviewKD: student stages fused top-down (ABF) learn every teacher stage (HCL)")
