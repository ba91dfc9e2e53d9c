"""The PyTorch sides of ``benchmarks/datafree_torch.py``: DFAD's and DFQ's schedule units, DeepInversion's
and CMI's rounds, each doing the work of jka's shipped CIFAR config (``families.SUITE``) with jka's PyTorch
twins, written the way a PyTorch user would (forward pre-hooks on the teacher's BatchNorms for the
statistics prior, channels_last, fused/foreach optimizers, bf16 autocast when asked).

Every value a side uses (generator, latent size, steps, loss weights, temperatures, bank, negatives,
views, pool, the optimizers' rates and betas) is read from the config the jka side runs, through the
method's own settings reader, so the two sides cannot drift apart silently. The formulas below are
jka's (``jka.losses``, ``jka.losses.priors``, ``jka.methods.datafree.cmi``) in PyTorch, NCHW;
``tests/benchmarks/test_datafree_torch.py`` checks them against jka's on the same inputs.

Where the sides differ, on purpose: the student's learning rate is held constant (jka's schedule changes
a scalar, no work); a PyTorch BatchNorm in training mode updates its running statistics where jka
discards them (DFQ's generator step, the generator in the student steps): a few vector ops; jka's loop
folds the teacher's variables once before the unit, PyTorch runs the teacher's BatchNorms as they are
(unless tuned).

``tuned=True`` is the strongest PyTorch a user would write (as ``benchmarks/torch_steps.py``'s KD step):
``cudnn.benchmark`` on CUDA, the frozen teacher's BatchNorms folded into its convolutions by ``torch.fx``
and the teacher kept in bf16 (with bf16), and ``torch.compile(mode="max-autotune")`` when compiled. The
methods with a BatchNorm prior (DFQ, DeepInversion, CMI) keep it exact on the folded teacher: a folded
convolution outputs ``y = s·z + β − s·μ`` (``s = γ/√(σ² + ε)``) of the BatchNorm's input ``z``, so
``mean(z) − μ = (mean(y) − β)/s`` and ``var(z) = var(y)/s²``, a few vector ops per layer (jka's fold
recovers ``z`` the same way, ``jka.models.layers.conv_bn``).
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import families
from benchmarks.throughput import CIFAR_MEAN, CIFAR_STD
from benchmarks.torch_steps import folded
from jka import methods
from jka.convert.torch_models import Generator, torch_create
from jka.errors import ConfigError

# jka generator name → the twin's first width in units of ngf (jka.models.generators)
START_MULT = {"small": 2, "generator": 4, "large": 8}
STAGES = ("stem", "layer1", "layer2", "layer3")  # the inputs of a ResNet's layer1..layer4 (CMI's "stages")


# ---------------------------------------------------------------------------------------------- formulas
def kd(s, t, T: float):
    """``T² · KL(σ(t/T) ‖ σ(s/T))`` summed over classes, mean over rows (jka.losses.kd)."""
    log_pt, log_ps = F.log_softmax(t.float() / T, 1), F.log_softmax(s.float() / T, 1)
    return T * T * (log_pt.exp() * (log_pt - log_ps)).sum(1).mean()


def js(s, t, T: float):
    """Jensen-Shannon divergence of ``σ(s/T)`` and ``σ(t/T)``, mean over rows (jka.losses.js)."""
    p, q = F.softmax(s.float() / T, 1), F.softmax(t.float() / T, 1)
    log_m = (0.5 * (p + q)).clamp(min=1e-12).log()
    kl = lambda a: (a * (a.clamp(min=1e-12).log() - log_m)).sum(1)  # noqa: E731
    return (0.5 * (kl(p) + kl(q))).mean()


def balance(t):
    """Negative entropy of the batch-mean teacher prediction (jka.losses.priors.balance)."""
    p = F.softmax(t.float(), 1).mean(0)
    return (p * p.clamp(min=1e-12).log()).sum()


def total_variation(v):
    """Mean absolute neighbour difference in 4 directions, summed (jka.losses.priors.total_variation), NCHW."""
    v = v.float()
    diffs = (v[:, :, :, 1:] - v[:, :, :, :-1], v[:, :, 1:, :] - v[:, :, :-1, :],
             v[:, :, 1:, 1:] - v[:, :, :-1, :-1], v[:, :, 1:, :-1] - v[:, :, :-1, 1:])
    return sum(d.abs().mean() for d in diffs)


def adversarial_agreement(t, s):
    """``−mean KL(p_t ‖ p_s)`` over the samples whose argmaxes agree (jka's cmi.adversarial_agreement)."""
    log_pt, log_ps = F.log_softmax(t.float(), 1), F.log_softmax(s.float(), 1)
    agree = (t.argmax(1) == s.argmax(1)).float()
    return -((log_pt.exp() * (log_pt - log_ps)).sum(1) * agree).sum() / agree.sum().clamp(min=1)


def contrastive(local_emb, global_emb, tau: float, valid, n_batch: int):
    """CMI's ``L_cr`` (jka's cmi.contrastive_loss): cross-entropy of ``local·sg(global)ᵀ/τ`` with the
    positives on the diagonal, invalid columns masked, batch rows and bank rows averaged apart and added."""
    logits = (local_emb @ global_emb.detach().T / tau).masked_fill(~valid[None, :], -1e9)
    nll, w = -torch.diagonal(F.log_softmax(logits, 1)), valid.float()
    mean = lambda a, b: (a * b).sum() / b.sum().clamp(min=1)  # noqa: E731
    return mean(nll[:n_batch], w[:n_batch]) + mean(nll[n_batch:], w[n_batch:])


def fold_keeping_statistics(model: nn.Module):
    """(``folded(model)``, {the name of each convolution a BatchNorm was folded into: that BatchNorm}).
    The pairs are the ones ``torch.fx``'s fusion folds: a Conv2d whose only user is a BatchNorm."""
    modules = dict(model.named_modules())
    pairs = {}
    for node in torch.fx.symbolic_trace(model).graph.nodes:
        src = node.args[0] if node.op == "call_module" and node.args else None
        if (isinstance(modules.get(node.target), nn.modules.batchnorm._BatchNorm) and isinstance(src, torch.fx.Node)
                and src.op == "call_module" and isinstance(modules[src.target], nn.Conv2d) and len(src.users) == 1):
            pairs[src.target] = modules[node.target]
    fused = folded(model)
    count = lambda m: sum(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())  # noqa: E731
    if count(fused) != count(model) - len(pairs):
        raise RuntimeError("torch.fx folded other BatchNorms than the Conv2d → BatchNorm pairs found")
    return fused, pairs


class BNPrior:
    """The teacher's BatchNorm inputs, recorded while ``on``: ``R_bn`` (Σ over the BatchNorms of
    ‖μ_batch − μ_run‖₂ + ‖var_batch − var_run‖₂, jka.losses.priors.bn_statistics) and the per-sample
    spatial means of every input, in call order (CMI's ``bn`` feature). A BatchNorm is recorded by a
    forward pre-hook; one folded into a convolution (``folded_bns``: {that convolution: the BatchNorm}) by a
    forward hook on the convolution, its input's statistics recovered from the output's (module docstring)."""

    def __init__(self, teacher: nn.Module, folded_bns: dict | None = None):
        self.on, self.inputs = False, []
        for m in teacher.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.register_forward_pre_hook(lambda bn, inputs: self.record(inputs[0], None, bn))
        for conv, bn in (folded_bns or {}).items():
            w = bn.weight if bn.affine else torch.ones_like(bn.running_var)
            fold = (w.detach().float() * torch.rsqrt(bn.running_var.float() + bn.eps),
                    bn.bias.detach().float() if bn.affine else torch.zeros_like(bn.running_var))
            conv.register_forward_hook(lambda _, __, out, fold=fold, bn=bn: self.record(out, fold, bn))

    def record(self, a, fold, bn):
        """``a``: the BatchNorm's input (``fold`` None) or the output of the convolution it is folded into
        (``fold = (s, β)``)."""
        if self.on:
            self.inputs.append((a, fold, bn))

    def __call__(self, teacher, x, means: bool = False, prior: bool = True):
        """(teacher logits, its features, R_bn (0 without ``prior``), with ``means`` the BN inputs' per-sample
        means (N, D), else None)."""
        self.on, self.inputs = prior or means, []
        try:
            logits, feats = teacher(x)
        finally:
            self.on = False
        stats, norm = self.statistics(prior, means), torch.linalg.vector_norm
        r_bn = sum((norm(mu - bn.running_mean) + norm(var - bn.running_var) for bn, mu, var, _ in stats), 0.0
                   ) if prior else 0.0
        return logits, feats, r_bn, torch.cat([m for *_, m in stats], 1) if means else None

    def statistics(self, moments: bool = True, means: bool = False):
        """Per BatchNorm recorded by the last call, in call order: (the BatchNorm, its input's per-channel
        batch mean and variance (None without ``moments``), its per-sample spatial means (None without
        ``means``)); for a folded one, recovered from the mean and variance of y = s·z + β − s·μ."""
        out = []
        for a, fold, bn in self.inputs:
            a = a.float()
            z_mean = (lambda m: m) if fold is None else (lambda m: (m - fold[1]) / fold[0] + bn.running_mean)
            mu = z_mean(a.mean((0, 2, 3))) if moments else None
            var = a.var((0, 2, 3), unbiased=False) / (1 if fold is None else fold[0] ** 2) if moments else None
            out.append((bn, mu, var, z_mean(a.mean((2, 3))) if means else None))
        return out


def stage_means(feats):
    """Per-sample spatial means of the stem's and layer1..3's outputs, concatenated (jka's cmi.stage_inputs)."""
    return torch.cat([feats[k].float().mean((2, 3)) for k in STAGES], 1)


class Ring:
    """jka's ``RingBuffer`` on a PyTorch device: ``capacity`` rows written in turn, the valid ones ``[:count]``."""

    def __init__(self, capacity: int, shape, dtype, device):
        self.data = torch.zeros((capacity, *shape), dtype=dtype, device=device)
        self.count = self.ptr = 0

    def add(self, items):
        n, cap = len(items), len(self.data)
        self.data[(self.ptr + torch.arange(n, device=items.device)) % cap] = items.to(self.data.dtype)
        self.count, self.ptr = min(self.count + n, cap), (self.ptr + n) % cap

    def sample(self, n: int):
        """``n`` valid rows drawn with replacement."""
        return self.data[torch.randint(0, max(self.count, 1), (n,), device=self.data.device)]

    def sample_distinct(self, n: int):
        """(rows, valid): ``n`` distinct slots, the valid ones first in random order (jka's sample_distinct)."""
        cap = len(self.data)
        n, slots = min(n, cap), torch.arange(cap, device=self.data.device)
        idx = torch.argsort(torch.rand(cap, device=self.data.device) + (slots >= self.count).float() * 2)[:n]
        return self.data[idx], idx < self.count


# ---------------------------------------------------------------------------------------------- views
def flip_half(x):
    """Each image mirrored with probability 1/2."""
    keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    return torch.where(keep, x, x.flip(3))


def crop_flip(x, pad: int, flip: bool = True):
    """Per-sample random crop after zero padding by ``pad`` pixels, then ``flip_half`` (jka's global_view)."""
    if pad:
        n, _, h, w = x.shape
        xp = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device) + torch.arange(h, device=x.device)
        ox = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device) + torch.arange(w, device=x.device)
        rows = torch.arange(n, device=x.device)[:, None, None]
        x = xp.permute(0, 2, 3, 1)[rows, oy[:, :, None], ox[:, None, :]].permute(0, 3, 1, 2)
    return flip_half(x) if flip else x


def local_view(x, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True):
    """Random resized crop (area fraction in ``scale``, aspect ratio in ``ratio``) resampled bilinearly
    to the input size, then ``flip_half`` (jka's local_view)."""
    n = x.shape[0]
    area = torch.empty(n, device=x.device).uniform_(*scale)
    r = torch.exp(torch.empty(n, device=x.device).uniform_(math.log(ratio[0]), math.log(ratio[1])))
    w, h = torch.sqrt(area * r).clamp(max=1.0), torch.sqrt(area / r).clamp(max=1.0)  # fractions of the side
    cx = (torch.rand(n, device=x.device) * (1 - w) + w / 2) * 2 - 1
    cy = (torch.rand(n, device=x.device) * (1 - h) + h / 2) * 2 - 1
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", align_corners=False)
    return flip_half(out) if flip else out


# ---------------------------------------------------------------------------------------------- the sides
class TorchDataFree:
    """What every side shares: the config's settings, teacher and student twins, normalisation,
    autocast, the student's optimizer (the config's SGD); ``tuned``: see the module docstring."""

    def __init__(self, name: str, args, device, compiled: bool, tuned: bool = False):
        self.device, self.bf16 = device, args.dtype == "bfloat16"
        self.cfg = families.load(families.DATAFREE[name], args.batch, families.round_overrides(name, args.iterations))
        self.s = methods.get(self.cfg.algorithm).read(self.cfg)
        _, (teacher_arch,), self.classes, _ = families.SUITE[families.DATAFREE[name]]
        cl = torch.channels_last
        if tuned and device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        teacher, self.folded_bns = torch_create(teacher_arch, self.classes).eval(), {}
        self.teacher_dtype = torch.bfloat16 if tuned and self.bf16 else torch.float32
        self.teacher_form = "as is (its BatchNorms run), float32 weights"
        if tuned:
            teacher, pairs = fold_keeping_statistics(teacher)
            self.folded_bns = {teacher.get_submodule(k): bn.to(device) for k, bn in pairs.items()}
            self.teacher_form = (f"{len(pairs)} BatchNorms folded into its convolutions (torch.fx), "
                                 f"{str(self.teacher_dtype).split('.')[-1]} weights")
        self.teacher = teacher.to(device, self.teacher_dtype, memory_format=cl).eval()
        self.teacher.requires_grad_(False)
        self.student = torch_create(self.cfg.model.name, self.classes).to(device, memory_format=cl).train()
        self.size, self.batch = args.image_size or 32, int(self.cfg.data.batch_size)
        self.mean = torch.tensor(CIFAR_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(CIFAR_STD, device=device).view(1, 3, 1, 1)
        self.fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
        o = self.cfg.optim
        self.opt_s = torch.optim.SGD(self.student.parameters(), lr=o.lr, momentum=o.momentum,
                                     weight_decay=o.weight_decay, nesterov=bool(o.nesterov), **self.fused)
        mode = {"mode": "max-autotune"} if tuned else {}
        self.compile = (lambda f: torch.compile(f, **mode)) if compiled else (lambda f: f)

    def run_teacher(self, x):
        """The teacher's (logits, features) of ``x``, given in the teacher's dtype."""
        return self.teacher(x.to(self.teacher_dtype))

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def normalise(self, x01):
        return ((x01 - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def generator(self):
        """The config's generator twin (images in [0, 1])."""
        if self.s.generator not in START_MULT:
            raise ConfigError(f"the PyTorch side has no twin of generator {self.s.generator!r}; "
                              f"it has {sorted(START_MULT)}")
        return Generator(nz=self.s.nz, ngf=self.s.ngf, img_size=self.size,
                         start_mult=START_MULT[self.s.generator]).to(self.device).train()

    def adam(self, params, lr, b1, b2):
        return torch.optim.Adam(params, lr=lr, betas=(b1, b2), **self.fused)

    def student_step(self, loss_fn, *inputs):
        loss = loss_fn(*inputs)
        self.opt_s.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_s.step()
        return loss

    def synchronize(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


class TorchGeneratorUnit(TorchDataFree):
    """A generator method's unit (jka.methods.datafree.generator, two-stage): ``g_steps`` generator steps
    (the student fixed) then ``kd_steps`` student steps on fresh samples; ``g_loss(z)``/``s_loss(z)``."""

    def __init__(self, name, args, device, compiled, tuned=False):
        super().__init__(name, args, device, compiled, tuned)
        s, g = self.s, self.s.g_optim
        self.unit = f"{s.g_steps} generator step(s) + {s.kd_steps} student steps ({name}, two-stage)"
        self.gen = self.generator()
        self.opt_g = self.adam(self.gen.parameters(), g.lr, g.b1, g.b2)
        self.g_loss, self.s_loss = self.compile(self._g_loss), self.compile(self._s_loss)

    def z(self):
        return torch.randn(self.batch, self.s.nz, device=self.device)

    def __call__(self):
        self.student.requires_grad_(False)  # the student is fixed during G's steps: no weight gradients
        for _ in range(self.s.g_steps):
            loss = self.g_loss(self.z())
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        self.student.requires_grad_(True)
        for _ in range(self.s.kd_steps):
            loss = self.student_step(self.s_loss, self.z())
        return loss

    def teacher_on_samples(self, z):
        """(normalised G(z), teacher logits), no gradient."""
        with torch.no_grad(), self.autocast():
            x = self.normalise(self.gen(z).float())
            return x, self.run_teacher(x)[0]


class TorchDFAD(TorchGeneratorUnit):
    """DFAD: G maximises the L1 between teacher and student logits; the student minimises it."""

    def __init__(self, args, device, compiled: bool, tuned: bool = False):
        super().__init__("dfad", args, device, compiled, tuned)

    def _g_loss(self, z):
        with self.autocast():  # jka runs DFAD's generator in the compute dtype too
            x = self.normalise(self.gen(z).float())
            t, _ = self.run_teacher(x)
            s, _ = self.student(x)
        return -(s.float() - t.float()).abs().mean()

    def _s_loss(self, z):
        x, t = self.teacher_on_samples(z)
        with self.autocast():
            s, _ = self.student(x)
        return (s.float() - t.float()).abs().mean()


class TorchDFQ(TorchGeneratorUnit):
    """DFQ: ``L_G = adv·(−kd(s, t, T)) + bn·R_bn + oh·CE(t, argmax t) + bal·L_bal``; ``L_S = kd(s, t, T)``."""

    def __init__(self, args, device, compiled: bool, tuned: bool = False):
        super().__init__("dfq", args, device, compiled, tuned)
        self.prior = BNPrior(self.teacher, self.folded_bns)

    def _g_loss(self, z):
        with self.autocast():
            x = self.normalise(self.gen(z).float())
        return self.objective(x)[0]

    def objective(self, x):
        """(``L_G``, its terms as jka's dfq.generator_loss names them) of the normalised images ``x``
        (the student as it is: in training mode in the unit)."""
        s = self.s
        with self.autocast():
            t, _, r_bn, _ = self.prior(self.run_teacher, x)
            logits, _ = self.student(x)
        t = t.float()
        terms = {"adv": -kd(logits, t, s.T), "bn": r_bn, "oh": F.cross_entropy(t, t.argmax(1)), "bal": balance(t)}
        return sum(getattr(s, k) * v for k, v in terms.items()), terms

    def _s_loss(self, z):
        x, t = self.teacher_on_samples(z)
        with self.autocast():
            logits, _ = self.student(x)
        return kd(logits, t, self.s.T)


class TorchInversion(TorchDataFree):
    """What DeepInversion's and CMI's rounds share (jka.methods.datafree.inversion): balanced random
    labels, the uint8 pool, the round's best batch, ``kd_steps`` student steps of ``kd(s, t, T)`` on
    pool batches (crop ``student_crop_pad`` + flip)."""

    def __init__(self, name, args, device, compiled, tuned=False):
        super().__init__(name, args, device, compiled, tuned)
        s = self.s
        self.n = s.batch_size or self.batch  # the synthesis batch (jka's inversion.synthesis_batch)
        self.unit = f"1 {name} round: {s.steps} synthesis iterations + {s.kd_steps} student steps"
        pool_dtype = {"uint8": torch.uint8, "float32": torch.float32}[s.pool_dtype]
        self.pool = Ring(s.pool_size, (3, self.size, self.size), pool_dtype, device)
        self.prior = BNPrior(self.teacher, self.folded_bns)
        self.kd_loss = self.compile(self._kd_loss)

    def labels(self):
        """Balanced random labels (jka's inversion.random_targets)."""
        return (torch.arange(self.n, device=self.device) % self.classes)[torch.randperm(self.n, device=self.device)]

    def keep_best(self, best, loss, *values):
        """(loss, values) where ``loss`` beats the best so far, on the device (no host round-trip)."""
        loss = loss.detach()
        if best is None:
            return (loss, *(v.detach() for v in values))
        better = loss < best[0]
        return tuple(torch.where(better, a.detach(), b) for a, b in zip((loss, *values), best))

    def to_pool(self, x01):
        x01 = x01.clamp(0, 1)
        self.pool.add((x01 * 255).round() if self.pool.data.dtype == torch.uint8 else x01)

    def _kd_loss(self, x):
        with torch.no_grad(), self.autocast():
            t, _ = self.run_teacher(x)
        with self.autocast():
            s, _ = self.student(x)
        return kd(s, t, self.s.T)

    def student_steps(self):
        self.student.train().requires_grad_(True)
        s = self.s
        for _ in range(s.kd_steps):
            x = self.pool.sample(self.batch).float()
            x = x / 255 if self.pool.data.dtype == torch.uint8 else x
            loss = self.student_step(self.kd_loss, self.normalise(crop_flip(x, s.student_crop_pad, s.student_flip)))
        return loss

    def fix_student(self):
        self.student.eval().requires_grad_(False)  # fixed during synthesis; gradients reach the images only


class TorchDeepInversion(TorchInversion):
    """DeepInversion's round: pixels ``v`` (normalised space, N(0, 1) or uniform pixels) optimised by
    Adam(lr, β = 0.5, 0.99) on ``bn·R_bn + oh·CE(t, y) − adv·js_T(s, t) + tv·L_tv(v)`` of one jittered
    (a roll of ±jitter px for the batch) and flipped copy, clipped to the image of [0, 1] after each step."""

    def __init__(self, args, device, compiled: bool, tuned: bool = False):
        super().__init__("deepinversion", args, device, compiled, tuned)
        self.lo, self.hi = -self.mean / self.std, (1 - self.mean) / self.std
        self.syn_loss = self.compile(self._syn_loss)

    def jitter_flip(self, v):
        """One random roll and flip for the whole batch, drawn on the host as the reference code draws them."""
        j = self.s.jitter
        if j:
            v = torch.roll(v, (random.randint(-j, j), random.randint(-j, j)), (2, 3))
        if self.s.flip and random.random() < 0.5:
            v = v.flip(3)
        return v.contiguous(memory_format=torch.channels_last)

    def _syn_loss(self, v, y):
        return self.objective(self.jitter_flip(v), v, y)[0]

    def objective(self, x, v, y):
        """(the loss, its terms as jka's deepinversion.synthesis_loss names them) of the jittered copy
        ``x`` of the pixels ``v``."""
        s = self.s
        with self.autocast():
            t, _, r_bn, _ = self.prior(self.run_teacher, x)
            logits, _ = self.student(x)
        t = t.float()
        terms = {"bn": r_bn, "oh": F.cross_entropy(t, y), "js": js(logits, t, s.js_T), "tv": total_variation(v)}
        return s.bn * r_bn + s.oh * terms["oh"] - s.adv * terms["js"] + s.tv * terms["tv"], terms

    def __call__(self):
        s, n = self.s, self.n
        shape = (n, 3, self.size, self.size)
        if s.init == "normal":
            v = torch.randn(shape, device=self.device)
        else:
            v = (torch.rand(shape, device=self.device) - self.mean) / self.std
        v.requires_grad_(True)
        opt = self.adam([v], s.lr, 0.5, 0.99)
        y, best = self.labels(), None
        self.fix_student()
        for _ in range(s.steps):
            loss = self.syn_loss(v, y)
            best = self.keep_best(best, loss, v)  # v before this step's update, as jka keeps it
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                v.copy_(torch.maximum(torch.minimum(v, self.hi), self.lo))
        self.to_pool(best[1] * self.std + self.mean)
        return self.student_steps()


class TorchCMI(TorchInversion):
    """CMI's round (jka.methods.datafree.cmi): a re-initialised generator and latent ``z`` (Adam lr_g,
    β = 0.5, 0.999) minimise ``bn·R_bn + oh·CE(t, y) + adv·L_adv + cr·L_cr`` on a global (crop + flip)
    and a local (resized crop + flip) view of G(z); the contrastive feature is the teacher's stage
    inputs (ResNet) or its BN inputs' means; the persistent head (Linear D→D, ReLU, Linear D→proj_dim,
    its own Adam) embeds the batch and ``negatives`` distinct bank rows; the round's best batch goes to
    the pool and its [global | local] features to the bank."""

    def __init__(self, args, device, compiled: bool, tuned: bool = False):
        super().__init__("cmi", args, device, compiled, tuned)
        s = self.s
        self.gen = self.generator()
        resnet = hasattr(self.teacher, "layer4")
        if s.features == "stages" and not resnet:
            raise ConfigError("cmi.features='stages' needs a ResNet teacher")
        self.stages = s.features == "stages" or (s.features == "auto" and resnet)
        with torch.no_grad():
            d = self.features(torch.zeros(2, 3, self.size, self.size, device=device))[-1].shape[1]
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, s.proj_dim)).to(device)
        self.opt_h = self.adam(self.head.parameters(), s.lr_g, 0.5, 0.999)
        self.bank = Ring(s.bank_size, (2 * d,), torch.float32, device)
        self.syn_loss = self.compile(self._syn_loss)

    def features(self, x, prior: bool = True):
        """(teacher logits, R_bn (without ``prior``: 0, not computed), the contrastive feature (N, D)) of
        normalised ``x``."""
        with self.autocast():
            logits, feats, r_bn, means = self.prior(self.run_teacher, x, means=not self.stages, prior=prior)
        return logits.float(), r_bn, stage_means(feats) if self.stages else means

    def embed(self, f):
        return F.normalize(self.head(f.float()), dim=1)

    def _syn_loss(self, z, y, negatives, valid):
        s = self.s
        x = self.gen(z)
        xg = self.normalise(crop_flip(x, s.crop_pad, s.flip))
        t, r_bn, f_g = self.features(xg)
        _, _, f_l = self.features(self.normalise(local_view(x, tuple(s.local_scale), flip=s.flip)), prior=False)
        with self.autocast():
            logits, _ = self.student(xg)
        d = f_g.shape[1]
        g_all, l_all = torch.cat([f_g, negatives[:, :d]]), torch.cat([f_l, negatives[:, d:]])
        rows = torch.cat([torch.ones(len(f_g), dtype=torch.bool, device=z.device), valid])
        cr = contrastive(self.embed(l_all), self.embed(g_all), s.tau, rows, len(f_g))
        loss = (s.bn * r_bn + s.oh * F.cross_entropy(t, y) + s.adv * adversarial_agreement(t, logits.float())
                + s.cr * cr)
        return loss, x, torch.cat([f_g, f_l], 1)

    def __call__(self):
        s = self.s
        for m in self.gen.modules():  # a fresh generator every round
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        z = torch.randn(self.n, s.nz, device=self.device, requires_grad=True)
        opt_g = self.adam([*self.gen.parameters(), z], s.lr_g, 0.5, 0.999)
        y, best = self.labels(), None
        negatives, valid = self.bank.sample_distinct(min(s.negatives, s.bank_size))
        self.fix_student()
        for _ in range(s.steps):
            loss, x, feats = self.syn_loss(z, y, negatives, valid)
            opt_g.zero_grad(set_to_none=True)
            self.opt_h.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            self.opt_h.step()
            best = self.keep_best(best, loss, x, feats)
        self.bank.add(best[2])
        self.to_pool(best[1])
        return self.student_steps()


SIDES = {"dfad": TorchDFAD, "dfq": TorchDFQ, "deepinversion": TorchDeepInversion, "cmi": TorchCMI}
