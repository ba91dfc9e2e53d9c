"""timm checkpoints through ``jka convert timm:NAME``: which jka network each timm model becomes.

| timm name | jka network |
|---|---|
| ``resnet18``, ``resnet34``, ``resnet50`` | ``resnet18/34/50`` (timm's keys are torchvision's) |
| ``mobilenetv2_035/050/075/100/140`` | ``mobilenetv2`` with ``width`` 0.35 ... 1.4 (keys renamed, :func:`rename_state`) |
| ``efficientnet_b0`` | ``efficientnet_b0`` (timm's layout) |
| ``vit_{tiny,small,base}_patch16_224``, ``deit_{tiny,small,base}_patch16_224`` | ``vit`` |
| ``deit_{tiny,small,base}_distilled_patch16_224`` | ``vit`` with ``dist_token`` |

A ViT takes ``img_size`` (``--kwargs '{"img_size": 32}'``), passed to timm's ``create_model`` as well;
the other networks take no option. The input normalisation of timm's ``pretrained_cfg`` (mean, std)
goes into the exported model.json. Resolving a name needs no timm; reading the normalisation and
``--verify`` (timm's own module next to the Flax one) do.
"""
from __future__ import annotations

import re
import sys
import types

from jka.errors import UserError
from jka.models.mobilenetv2 import SETTINGS as MOBILENETV2_SETTINGS

PREFIX = "timm:"
_VIT_SHAPES = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}  # embed_dim, heads (depth 12, patch 16)


def _table() -> dict[str, tuple[str, dict]]:
    table = {f"resnet{d}": (f"resnet{d}", {}) for d in (18, 34, 50)}
    table.update({f"mobilenetv2_{w}": ("mobilenetv2", {"width": int(w) / 100}) for w in ("035", "050", "075", "100", "140")})
    table["efficientnet_b0"] = ("efficientnet_b0", {})
    for size, (dim, heads) in _VIT_SHAPES.items():
        vit = {"patch_size": 16, "embed_dim": dim, "depth": 12, "num_heads": heads, "img_size": 224}
        table[f"vit_{size}_patch16_224"] = table[f"deit_{size}_patch16_224"] = ("vit", vit)
        table[f"deit_{size}_distilled_patch16_224"] = ("vit", {**vit, "dist_token": True})
    return table


MODELS = _table()
TIMM_OPTIONS = ("img_size",)  # the options a converted timm ViT takes; the others take none


def is_timm(arch: str) -> bool:
    return arch.startswith(PREFIX)


def resolve(arch: str, kwargs: dict) -> tuple[str, str, dict]:
    """``(timm name, jka architecture, jka options)`` of ``timm:NAME`` with ``--kwargs``."""
    name = arch.removeprefix(PREFIX)
    if name not in MODELS:
        raise UserError(f"timm model {name!r} is not one jka converts; supported: {', '.join(sorted(MODELS))}")
    jka_arch, options = MODELS[name]
    allowed = [k for k in TIMM_OPTIONS if k in options]
    unknown = [k for k in kwargs if k not in allowed]
    if unknown:
        takes = f"takes only {', '.join(allowed)}" if allowed else "takes no option"
        raise UserError(f"--kwargs {kwargs} do not fit timm:{name}: it {takes}")
    return name, jka_arch, {**options, **kwargs}


def rename_state(name: str, state: dict) -> dict:
    """timm's keys in jka's layout for ``name``: mobilenetv2 (``conv_stem``, ``blocks.s.i.*``,
    ``conv_head``, ``classifier``) → torchvision's (``features.k.*``, ``classifier.1``); others unchanged."""
    if not name.startswith("mobilenetv2_"):
        return dict(state)
    first = [1]  # torchvision's features index of each stage's first block
    for _, _, n, _ in MOBILENETV2_SETTINGS:
        first.append(first[-1] + n)
    last = first[-1]
    fixed = {"conv_stem": "features.0.0", "bn1": "features.0.1", "conv_head": f"features.{last}.0",
             "bn2": f"features.{last}.1", "classifier": "classifier.1"}
    # module → module in a block: depthwise-separable (stage 0), inverted residual (the others)
    ds = {"conv_dw": "conv.0.0", "bn1": "conv.0.1", "conv_pw": "conv.1", "bn2": "conv.2"}
    ir = {"conv_pw": "conv.0.0", "bn1": "conv.0.1", "conv_dw": "conv.1.0", "bn2": "conv.1.1", "conv_pwl": "conv.2",
          "bn3": "conv.3"}
    out = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        block = re.fullmatch(r"blocks\.(\d+)\.(\d+)\.(\w+)", module)
        if module in fixed:
            module = fixed[module]
        elif block and int(block[1]) < len(MOBILENETV2_SETTINGS):
            s, i, part = int(block[1]), int(block[2]), block[3]
            layer = (ds if s == 0 else ir).get(part)
            module = f"features.{first[s] + i}.{layer}" if layer else module
        out[f"{module}.{leaf}"] = value
    return out


def import_timm():
    """timm, imported. Its import loads torchvision, whose PyPI wheels are CUDA builds: next to a CPU
    torch their detection ops cannot register, so the import is retried without those registrations
    (timm's models do not use them)."""
    try:
        try:
            import torchvision  # noqa: F401
        except RuntimeError as err:  # "operator torchvision::nms does not exist"
            if "torchvision::" not in str(err):
                raise
            for loaded in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
                del sys.modules[loaded]
            sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import timm
    except ImportError as err:
        raise UserError(f"converting a timm model needs timm and PyTorch (pip install timm) ({err})") from None
    return timm


def create(name: str, num_classes: int, kwargs: dict):
    """timm's own ``name`` with random weights (no download), in inference mode."""
    timm = import_timm()
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs).eval()


def normalisation(name: str) -> dict:
    """``{'mean': [...], 'std': [...]}`` of timm's pretrained configuration for ``name``."""
    cfg = import_timm().models.get_pretrained_cfg(name)
    return {"mean": [float(v) for v in cfg.mean], "std": [float(v) for v in cfg.std]}


def twin(name: str, num_classes: int, kwargs: dict, state: dict):
    """timm's ``name`` holding the checkpoint's own tensors ``state`` (strictly), for ``--verify``."""
    import torch

    model = create(name, num_classes, {k: v for k, v in kwargs.items() if k in TIMM_OPTIONS})
    try:
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=True)
    except RuntimeError as err:
        raise UserError(f"timm's {name} does not take these weights: {' '.join(str(err).split())}") from None
    return model
