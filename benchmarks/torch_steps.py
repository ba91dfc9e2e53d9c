"""The PyTorch way of doing jka's training steps, for the throughput comparison.

Same models (jka's PyTorch twins), same loss formulas (``jka.losses.kd``: ``T² KL(σ(t/T) ‖ σ(s/T))``
with the batch mean; cross-entropy), same optimizer (SGD with momentum, L2 weight decay added to
the gradient, cosine schedule), same input processing (uint8 → ``(x/255 − mean)/std`` on the
device). Eager mode runs channels_last with bf16 autocast when asked; ``torch.compile`` compiles
the forward + loss (its backward through AOTAutograd).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from jka.convert.torch_models import torch_create


def kd_loss(s, t, T: float):
    """``T² · KL(σ(t/T) ‖ σ(s/T))`` summed over classes, mean over the batch (jka.losses.kd)."""
    log_p_t = F.log_softmax(t.float() / T, dim=-1)
    log_p_s = F.log_softmax(s.float() / T, dim=-1)
    return (T * T) * (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()


@dataclasses.dataclass
class StepConfig:
    task: str  # "kd" or "supervised"
    student: str
    teacher: str | None
    num_classes: int
    lr: float
    momentum: float
    weight_decay: float
    total_steps: int
    T: float
    alpha: float
    beta: float
    mean: tuple
    std: tuple
    bf16: bool


def folded(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of ``model`` with every BatchNorm folded into the convolution before it
    (``torch.fx``'s conv–BN fusion: the same function, one kernel less per layer)."""
    from torch.fx.experimental.optimization import fuse

    return fuse(model.eval(), inplace=False)


class TorchStep:
    """``step(images_uint8_nchw, labels) -> loss`` on ``device``; ``compiled=True`` uses torch.compile.

    ``tuned=True`` is the strongest PyTorch a user would write: ``cudnn.benchmark``, the frozen
    teacher's BatchNorms folded and the teacher kept in bf16 (with ``cfg.bf16``), and
    ``torch.compile(mode="max-autotune")`` when compiled."""

    def __init__(self, cfg: StepConfig, device: torch.device, compiled: bool = False, tuned: bool = False):
        self.cfg, self.device, self.tuned = cfg, device, tuned
        if tuned and device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        fmt = torch.channels_last
        self.student = torch_create(cfg.student, cfg.num_classes).to(device, memory_format=fmt).train()
        self.teacher = None
        if cfg.task == "kd":
            teacher = torch_create(cfg.teacher, cfg.num_classes).eval()
            if tuned:
                teacher = folded(teacher).to(torch.bfloat16 if cfg.bf16 else torch.float32)
            self.teacher = teacher.to(device, memory_format=fmt)
            self.teacher.requires_grad_(False)
        fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
        self.opt = torch.optim.SGD(self.student.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay, **fused)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=max(cfg.total_steps, 1))
        self.mean = torch.tensor(cfg.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(cfg.std, device=device).view(1, -1, 1, 1)
        mode = {"mode": "max-autotune"} if tuned else {}
        self.forward_loss = torch.compile(self._forward_loss, **mode) if compiled else self._forward_loss

    def _forward_loss(self, images, labels):
        cfg = self.cfg
        x = ((images.float() / 255.0 - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            s, _ = self.student(x)
            if cfg.task == "supervised":
                return F.cross_entropy(s.float(), labels)
            with torch.no_grad():
                t, _ = self.teacher(x.to(torch.bfloat16) if self.tuned and cfg.bf16 else x)
            loss = cfg.alpha * kd_loss(s, t, cfg.T)
            if cfg.beta > 0:
                loss = loss + cfg.beta * F.cross_entropy(s.float(), labels)
            return loss

    def __call__(self, images, labels):
        loss = self.forward_loss(images, labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return loss

    def synchronize(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def flops_per_step(step: TorchStep, images, labels) -> float | None:
    """FLOPs of one step as PyTorch's FlopCounterMode counts them (forward + backward)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    counter = FlopCounterMode(display=False)
    with counter:
        loss = step._forward_loss(images, labels)
        loss.backward()
    step.opt.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())
