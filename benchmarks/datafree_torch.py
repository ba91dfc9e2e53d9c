"""Data-free steps, jka vs the PyTorch way, same device, one run: DFAD's schedule unit and CMI's round.

    python -m benchmarks.datafree_torch [--only dfad,cmi] [--batch 256] [--steps 5] [--warmup 1] \
        [--dtype bfloat16|float32] [--torch-compile auto|on|off] [--image-size N] [--iterations N] [--json FILE]

The jka side is the step ``benchmarks/families.py`` times (``dfad_two_stage`` and ``cmi_round``, built
from ``configs/datafree/cifar10.py:method={dfad,cmi},pair=resnet34_resnet18``). The PyTorch side does the same
work with jka's PyTorch twins (channels_last, bf16 autocast, fused optimizers), written the way a
PyTorch user would (forward hooks on the teacher's BatchNorms for the statistics prior):

- DFAD unit (``datafree.g_steps=1``, ``kd_steps=5``): one generator step (Adam; maximise the L1 between
  teacher and student logits on G's images, the student fixed) then five student steps (SGD; L1 on
  fresh G samples).
- CMI round (``cmi.steps=200`` generator iterations, ``cmi.kd_steps=400``): a re-initialised generator
  and latent z (Adam) minimise ``bn·R_bn + oh·CE + adv·(agreement KL) + cr·L_cr`` on a global view
  (crop + flip) and a local view (random resized crop + flip) of G(z); the contrastive term uses a
  persistent projection head and 4096 negatives from the memory bank; the round's best batch goes into
  the uint8 pool and its features into the bank; then 400 student steps (kd, T=20) on pool batches.

``torch.compile`` (``--torch-compile``; auto = on CUDA only) compiles each per-iteration forward + loss;
optimizer steps stay eager (fused). ``--iterations`` shortens CMI's round (synthesis and student steps)
for CPU smoke runs only; the JSON records it. FLOPs (for TFLOP/s and MFU) are jka's jaxpr count of the
same unit, used for both frameworks.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

# Both frameworks share one GPU in this process: without this, jax reserves 75 % of its memory up
# front and the PyTorch CMI round (≈ 19 GiB and more) runs out of memory (seen on an H100).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402

from benchmarks import families  # noqa: E402
from benchmarks.throughput import (CIFAR_MEAN, CIFAR_STD, RESULTS_DIR, device_name, has_accelerator, speedup,
                                   time_torch, write_json)

FAMILY = {"dfad": "dfad_two_stage", "cmi": "cmi_round"}


# ---------------------------------------------------------------------------------------------- jka side
def bench_jka(name: str, args) -> dict:
    ns = argparse.Namespace(batch=args.batch, image_size=args.image_size, dtype=args.dtype, steps=args.steps,
                            warmup=args.warmup)
    overrides = {}
    if name == "cmi" and args.iterations:
        overrides = {"cmi.steps": args.iterations, "cmi.kd_steps": args.iterations}
    return families.bench_family(FAMILY[name], ns, overrides)


# ---------------------------------------------------------------------------------------------- PyTorch side
class TorchDataFree:
    """Shared pieces: models, input normalisation, autocast, optimizers."""

    def __init__(self, args, device, compiled: bool):
        import torch

        from jka.convert.torch_models import torch_create

        self.torch, self.device, self.bf16 = torch, device, args.dtype == "bfloat16"
        cl = torch.channels_last
        self.teacher = torch_create("cifar_resnet34", 10).to(device, memory_format=cl).eval().requires_grad_(False)
        self.student = torch_create("cifar_resnet18", 10).to(device, memory_format=cl).train()
        self.size, self.batch = args.image_size or 32, args.batch
        self.mean = torch.tensor(CIFAR_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(CIFAR_STD, device=device).view(1, 3, 1, 1)
        fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
        self.fused = fused
        self.opt_s = torch.optim.SGD(self.student.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, **fused)
        self.compile = (lambda f: torch.compile(f)) if compiled else (lambda f: f)

    def autocast(self):
        return self.torch.autocast(self.device.type, dtype=self.torch.bfloat16, enabled=self.bf16)

    def normalise(self, x01):
        return ((x01 - self.mean) / self.std).contiguous(memory_format=self.torch.channels_last)

    def synchronize(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)


class TorchDFAD(TorchDataFree):
    def __init__(self, args, device, compiled: bool):
        super().__init__(args, device, compiled)
        from jka import run
        from jka.convert.torch_models import Generator

        torch = self.torch
        # the generator and its optimizer as jka's shipped config has them
        c = run.load("datafree/cifar10:method=dfad,pair=resnet34_resnet18", ()).dfad
        start_mult = {"small": 2, "generator": 4, "large": 8}[c.generator]
        self.nz, self.kd_steps = int(c.nz), int(c.kd_steps)
        self.unit = f"{int(c.g_steps)} generator step + {self.kd_steps} student steps (DFAD, two-stage)"
        self.gen = Generator(nz=self.nz, ngf=int(c.ngf), img_size=self.size, start_mult=start_mult).to(device).train()
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=c.g_optim.lr, betas=(c.g_optim.b1, c.g_optim.b2),
                                      **self.fused)
        self.g_loss = self.compile(self._g_loss)
        self.s_loss = self.compile(self._s_loss)

    def _g_loss(self, z):
        with self.autocast():  # jka runs DFAD's generator in the compute dtype too
            x = self.normalise(self.gen(z).float())
            t, _ = self.teacher(x)
            s, _ = self.student(x)
        return -(s.float() - t.float()).abs().mean()

    def _s_loss(self, z):
        with self.torch.no_grad(), self.autocast():
            x = self.normalise(self.gen(z).float())
            t, _ = self.teacher(x)
        with self.autocast():
            s, _ = self.student(x)
        return (s.float() - t.float()).abs().mean()

    def __call__(self):
        torch = self.torch
        self.student.requires_grad_(False)  # the student is fixed during G's step: no weight gradients
        loss = self.g_loss(torch.randn(self.batch, self.nz, device=self.device))
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.student.requires_grad_(True)
        for _ in range(self.kd_steps):
            loss = self.s_loss(torch.randn(self.batch, self.nz, device=self.device))
            self.opt_s.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_s.step()
        return loss


class TorchCMI(TorchDataFree):
    def __init__(self, args, device, compiled: bool):
        super().__init__(args, device, compiled)
        from torch import nn

        from jka.convert.torch_models import torch_create

        torch = self.torch
        self.steps = args.iterations or 200
        self.kd_steps = args.iterations or 400
        self.unit = f"1 CMI round: {self.steps} synthesis iterations + {self.kd_steps} student steps"
        self.nz, self.bank_size, self.negatives, self.tau, self.T = 256, 40960, 4096, 0.1, 20.0
        self.gen = torch_create("generator", 10, nz=self.nz, ngf=64, img_size=self.size).to(device).train()
        self.bns = [m for m in self.teacher.modules() if isinstance(m, nn.BatchNorm2d)]
        self.captured = []
        for bn in self.bns:
            bn.register_forward_pre_hook(lambda m, inp: self.captured.append((m, inp[0])))
        d = sum(bn.num_features for bn in self.bns)
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 256)).to(device)
        self.opt_h = torch.optim.Adam(self.head.parameters(), lr=1e-3, betas=(0.5, 0.999), **self.fused)
        self.bank = torch.zeros(self.bank_size, 2 * d, device=device)
        self.bank_count = 0
        self.pool = torch.zeros(0, 3, self.size, self.size, dtype=torch.uint8, device=device)
        self.syn_loss = self.compile(self._syn_loss)
        self.kd_loss = self.compile(self._kd_loss)

    # -- views -----------------------------------------------------------------------------------------
    def global_view(self, x, pad=4):
        torch = self.torch
        n, _, h, w = x.shape
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device) + torch.arange(h, device=x.device)
        ox = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device) + torch.arange(w, device=x.device)
        rows = torch.arange(n, device=x.device)[:, None, None]
        out = xp.permute(0, 2, 3, 1)[rows, oy[:, :, None], ox[:, None, :]].permute(0, 3, 1, 2)
        return self.flip(out)

    def local_view(self, x, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3)):
        torch = self.torch
        n = x.shape[0]
        area = torch.empty(n, device=x.device).uniform_(*scale)
        r = torch.exp(torch.empty(n, device=x.device).uniform_(math.log(ratio[0]), math.log(ratio[1])))
        w, h = torch.sqrt(area * r).clamp(max=1.0), torch.sqrt(area / r).clamp(max=1.0)  # fractions of the side
        cx = (torch.rand(n, device=x.device) * (1 - w) + w / 2) * 2 - 1
        cy = (torch.rand(n, device=x.device) * (1 - h) + h / 2) * 2 - 1
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        return self.flip(torch.nn.functional.grid_sample(x, grid, mode="bilinear", align_corners=False))

    def flip(self, x):
        keep = self.torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
        return self.torch.where(keep, x, x.flip(3))

    # -- one synthesis iteration -------------------------------------------------------------------------
    def teacher_forward(self, x):
        """Teacher logits, R_bn (the BN-statistics prior) and the per-sample spatial means of every BN input."""
        torch = self.torch
        self.captured.clear()
        with self.autocast():
            logits, _ = self.teacher(x)
        r_bn, means = 0.0, []
        for bn, a in self.captured:
            a = a.float()
            mu, var = a.mean((0, 2, 3)), a.var((0, 2, 3), unbiased=False)
            norm = torch.linalg.vector_norm
            r_bn = r_bn + norm(mu - bn.running_mean) + norm(var - bn.running_var)
            means.append(a.mean((2, 3)))
        return logits.float(), r_bn, torch.cat(means, 1)

    def embed(self, f):
        return self.torch.nn.functional.normalize(self.head(f), dim=1)

    def _syn_loss(self, z, y, negatives, valid):
        torch, F = self.torch, self.torch.nn.functional
        x = self.gen(z)
        xg = self.normalise(self.global_view(x))
        t, r_bn, f_g = self.teacher_forward(xg)
        _, _, f_l = self.teacher_forward(self.normalise(self.local_view(x)))
        with self.autocast():
            s, _ = self.student(xg)
        log_pt, log_ps = F.log_softmax(t, 1), F.log_softmax(s.float(), 1)
        agree = (t.argmax(1) == s.argmax(1)).float()
        adv = -((log_pt.exp() * (log_pt - log_ps)).sum(1) * agree).sum() / agree.sum().clamp(min=1)
        d = f_g.shape[1]
        g_all, l_all = torch.cat([f_g, negatives[:, :d]]), torch.cat([f_l, negatives[:, d:]])
        logits = self.embed(l_all) @ self.embed(g_all).detach().T / self.tau
        rows = torch.cat([torch.ones(len(f_g), dtype=torch.bool, device=z.device), valid])
        logits = logits.masked_fill(~rows[None, :], -1e9)
        nll = -torch.diagonal(F.log_softmax(logits, 1))
        cr = (nll * rows).sum() / rows.sum()
        loss = r_bn + F.cross_entropy(t, y) + 0.5 * adv + 0.8 * cr
        return loss, x, torch.cat([f_g, f_l], 1)

    def _kd_loss(self, x):
        torch, F = self.torch, self.torch.nn.functional
        with torch.no_grad(), self.autocast():
            t, _ = self.teacher(x)
        with self.autocast():
            s, _ = self.student(x)
        log_pt, log_ps = F.log_softmax(t.float() / self.T, 1), F.log_softmax(s.float() / self.T, 1)
        return self.T ** 2 * (log_pt.exp() * (log_pt - log_ps)).sum(1).mean()

    def __call__(self):
        torch = self.torch
        dev, n = self.device, self.batch
        for m in self.gen.modules():  # a fresh generator every round
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        z = torch.randn(n, self.nz, device=dev, requires_grad=True)
        opt_g = torch.optim.Adam([*self.gen.parameters(), z], lr=1e-3, betas=(0.5, 0.999), **self.fused)
        y = (torch.arange(n, device=dev) % 10)[torch.randperm(n, device=dev)]
        k = min(self.negatives, self.bank_count)
        idx = torch.randperm(max(self.bank_count, 1), device=dev)[:self.negatives]
        negatives = torch.zeros(self.negatives, self.bank.shape[1], device=dev)
        valid = torch.zeros(self.negatives, dtype=torch.bool, device=dev)
        negatives[:k], valid[:k] = self.bank[idx[:k]], True
        self.student.eval().requires_grad_(False)  # fixed during synthesis; gradients reach x only
        best = (torch.tensor(float("inf"), device=dev), None, None)
        for _ in range(self.steps):
            loss, x, feats = self.syn_loss(z, y, negatives, valid)
            opt_g.zero_grad(set_to_none=True)
            self.opt_h.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            self.opt_h.step()
            better = loss.detach() < best[0]  # kept on the device: no host round-trip per iteration
            best = (torch.where(better, loss.detach(), best[0]),
                    x.detach() if best[1] is None else torch.where(better, x.detach(), best[1]),
                    feats.detach() if best[2] is None else torch.where(better, feats.detach(), best[2]))
        slot = self.bank_count % self.bank_size
        self.bank[slot:slot + n] = best[2][:self.bank_size - slot]
        self.bank_count = min(self.bank_count + n, self.bank_size)
        self.pool = torch.cat([self.pool, (best[1].clamp(0, 1) * 255).round().to(torch.uint8)])
        self.student.train().requires_grad_(True)
        for _ in range(self.kd_steps):
            pick = torch.randint(0, len(self.pool), (n,), device=dev)
            x = self.normalise(self.global_view(self.pool[pick].float() / 255))
            loss = self.kd_loss(x)
            self.opt_s.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_s.step()
        return loss


def bench_torch(name: str, args, compiled: bool, flops: float | None) -> dict:
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    step = (TorchDFAD if name == "dfad" else TorchCMI)(args, device, compiled)
    return time_torch(step, step.synchronize, device, args.batch, args.steps, args.warmup, flops,
                      flops_source="jaxpr (jka's unit)", unit=step.unit)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.datafree_torch", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="dfad,cmi")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=5, help="timed units per framework")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default=None)
    p.add_argument("--torch-compile", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--image-size", type=int, default=None, help="override 32 (CPU smoke runs)")
    p.add_argument("--iterations", type=int, default=None,
                   help="CMI synthesis iterations and student steps per round (default: the config's 200 and 400)")
    p.add_argument("--framework", choices=("jax", "torch", "both"), default="both",
                   help="which sides to time (benchmarks.cpu_side_by_side runs each in its own process)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    args.dtype = args.dtype or ("bfloat16" if has_accelerator() else "float32")
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if any(n not in FAMILY for n in names) or args.steps < 1 or args.batch < 1:
        print(f"--only takes {sorted(FAMILY)}; --steps and --batch must be >= 1", file=sys.stderr)
        return 2
    import torch

    use_compile = args.torch_compile == "on" or (args.torch_compile == "auto" and torch.cuda.is_available())
    kind = (getattr(jax.devices()[0], "device_kind", "") or "cpu").lower().replace(" ", "_")
    path = args.json or (os.path.join(RESULTS_DIR, f"datafree_b{args.batch}_{args.dtype}_{kind}.json")
                         if has_accelerator() else None)
    result = {"device": device_name(), "jax_version": jax.__version__, "torch_version": torch.__version__,
              "batch": args.batch, "dtype": args.dtype, "iterations_override": args.iterations, "families": {}}
    failed = 0
    for name in names:
        r = result["families"][name] = {}
        for side in ("jka", "torch", "torch_compile"):
            if side not in {"both": (side,), "jax": ("jka",), "torch": ("torch", "torch_compile")}[args.framework]:
                r[side] = {"skipped": f"--framework {args.framework}"}
                continue
            if side == "torch_compile" and not use_compile:
                r[side] = {"skipped": "off (--torch-compile auto compiles only on CUDA)"}
                continue
            try:
                if side == "jka":
                    r[side] = bench_jka(name, args)
                else:
                    r[side] = bench_torch(name, args, side == "torch_compile", r.get("jka", {}).get("flops_per_step"))
            except Exception as e:  # one failure must not lose the other numbers
                failed += 1
                r[side] = {"error": f"{type(e).__name__}: {e}"[:2000]}
            row = r[side]
            line = (f"{row['ms_per_step']:10.1f} ms/unit  {row['img_per_s']:9.1f} img/s  "
                    f"compile {row['compile_s']:6.1f} s"
                    + (f"  MFU {100 * row['mfu']:.1f}%" if row.get("mfu") else "") if "ms_per_step" in row
                    else str(row)[:300])
            print(f"{name:5s} {side:14s} {line}", flush=True)
            r["speedup_vs_torch_eager"] = speedup(r.get("jka"), r.get("torch"))
            r["speedup_vs_torch_compile"] = speedup(r.get("jka"), r.get("torch_compile"))
            if path:
                write_json(result, path)
        for key in ("speedup_vs_torch_eager", "speedup_vs_torch_compile"):
            if r.get(key):
                print(f"{name:5s} {key} = {r[key]:.2f}x")
    print("wrote", path) if path else None
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
