"""Convert a PyTorch checkpoint into an exported jka model, optionally verified against PyTorch.

``convert`` writes ``OUT/model.json`` + ``OUT/variables.msgpack`` (:func:`jka.train.export.export_model`),
so any config can name OUT as ``teachers[i].workdir``. ``verify`` runs jka's PyTorch twin of the
architecture with the same weights next to the Flax model, both in inference mode and float32 on
the same random batch, and reports the largest absolute differences.
"""
from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from jka import models
from jka.convert import families, timm_models
from jka.convert.export import holds_only, refuse_occupied
from jka.convert.load import convert_state_dict, input_channels, read_state_dict
from jka.errors import UserError, unknown_choice
from jka.train.export import export_model

# the verification input side of architectures made for ImageNet-sized inputs; 32 otherwise
IMAGENET_ARCHS = ("resnet18", "resnet34", "resnet50", "mobilenetv2", "mobilenetv2_x0_5", "efficientnet_b0")
VERIFY_TOLERANCE = 1e-4  # max |Δlogit| relative to max(1, max |logit|)


def default_image_size(arch: str, kwargs: dict | None = None) -> int:
    kwargs = kwargs or {}
    if arch == "small_cnn":
        return 8
    if arch == "vit":  # a ViT takes one image size only
        return families.input_size(arch, kwargs, 0)
    if arch in IMAGENET_ARCHS and kwargs.get("stem_stride", 2) != 1:
        return 224
    return 32


def _max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def verify(arch: str, num_classes: int, variables: dict, state: dict, kwargs: dict | None = None,
           in_channels: int = 3, image_size: int | None = None, batch: int = 2, seed: int = 0, twin=None) -> dict:
    """``{'logits': max|Δ|, 'features': {name: max|Δ|}, 'max_abs_logit': ...}`` of Flax vs PyTorch.

    ``state`` is the PyTorch state dict the variables were converted from (loaded strictly into the
    twin). Outputs and features are compared in NHWC; "logits" is the model's output (a dense map
    for SegNet, images for the generators, which take a random latent batch instead of images).
    ``twin``: a PyTorch module holding these weights already (timm's own), in place of jka's twin.
    """
    try:
        import torch
    except ImportError:
        raise UserError("--verify needs PyTorch (pip install 'jka[torch]')") from None

    kwargs, arch = dict(kwargs or {}), families.arch_name(arch)
    size = image_size or default_image_size(arch, kwargs)
    twin = _jka_twin(arch, num_classes, state, kwargs, in_channels) if twin is None else twin
    x = families.example_input(arch, kwargs, in_channels, size, batch, np.random.default_rng(seed))
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            t_logits, t_feats = _split(twin(torch.from_numpy(x)))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    t_logits = _nhwc(t_logits.numpy())
    model = families.flax_model(arch, num_classes, kwargs)
    with jax.default_matmul_precision("highest"):
        apply = jax.jit(lambda v, x: _split(model.apply(v, x, train=False)))
        logits, feats = apply(variables, families.to_flax_input(x))
    report = {"logits": _max_abs(logits, t_logits), "features": {},
              "max_abs_logit": float(np.max(np.abs(t_logits)))}
    for name, t in t_feats.items():
        t = _nhwc(t.numpy())
        report["features"][name] = _max_abs(feats[name], t) if name in feats else float("nan")
    return report


def _jka_twin(arch, num_classes, state, kwargs, in_channels):
    """jka's PyTorch definition of ``arch`` holding ``state``, in inference mode."""
    import torch

    from jka.convert.torch_models import torch_create

    torch_kwargs = dict(kwargs, **({"in_channels": in_channels} if in_channels != 3 else {}))
    twin = torch_create(arch, num_classes, **torch_kwargs).eval()
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    try:
        missing, unexpected = twin.load_state_dict(tensors, strict=False)
    except RuntimeError as err:  # shapes jka's twin cannot take (e.g. a non-RGB stem it does not model)
        detail = str(err).replace("\n", " ")
        raise UserError(f"jka's PyTorch {arch} cannot take these weights for --verify: {detail}") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:  # cannot happen after a successful conversion unless the twin differs
        raise UserError(f"jka's PyTorch {arch} does not take these weights (missing {missing}, "
                        f"unexpected {unexpected}); report this as a bug")
    return twin


def _split(out):
    """``(output, features)`` of a model that returns either that pair or its output alone (generators).

    Per-task outputs (the branchy SegNet) are joined along the channels, in task order.
    """
    out, feats = out if isinstance(out, tuple) else (out, {})
    if isinstance(out, (tuple, list)):
        out = (torch_cat(out) if hasattr(out[0], "detach") else jnp.concatenate(out, axis=-1))
    return out, feats


def torch_cat(outs):
    import torch

    return torch.cat(list(outs), dim=1)


def _nhwc(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def verify_ok(report: dict) -> bool:
    return report["logits"] <= VERIFY_TOLERANCE * max(1.0, report["max_abs_logit"])


def format_report(report: dict) -> str:
    lines = [f"max |Δlogit| = {report['logits']:.3g} (max |logit| {report['max_abs_logit']:.3g})"]
    lines += [f"max |Δ{name}| = {d:.3g}" for name, d in report["features"].items()]
    return "\n".join(lines)


def _check_options(arch: str, num_classes: int, kwargs: dict, image_size: int | None) -> None:
    """Refuse an architecture, class count, options or image size that cannot make a model."""
    generator = families.is_generator(arch)
    if not generator and arch not in models.available():
        raise unknown_choice("architecture", arch, [*models.available(), *families.GENERATOR_START_MULT])
    least = 0 if generator else 1  # generators ignore --num-classes
    if num_classes < least:
        raise UserError(f"--num-classes must be at least {least} for {arch}, not {num_classes}; give the number "
                        "of outputs of the checkpoint's classifier")
    if not generator:
        models.check_kwargs(arch, kwargs, num_classes, where="--kwargs")
    elif any(k not in families.GENERATOR_DEFAULTS or not isinstance(v, int) or isinstance(v, bool) or v < 1
             for k, v in kwargs.items()):
        raise UserError(f"--kwargs {kwargs} do not fit {arch}: its options are "
                        f"{', '.join(families.GENERATOR_DEFAULTS)}, each a positive whole number")
    if image_size is not None and image_size < 1:
        raise UserError(f"--image-size must be a positive number of pixels, not {image_size}")
    if arch == "vit" and image_size not in (None, default_image_size(arch, kwargs)):
        raise UserError(f"--image-size {image_size} differs from the ViT's img_size {default_image_size(arch, kwargs)}; "
                        "a ViT takes one image size: give it as --kwargs '{\"img_size\": N}'")


def _is_conversion(out: str) -> bool:
    """Whether ``out`` holds only an earlier conversion's model.json and variables.msgpack."""
    return holds_only(out, {"model.json", "variables.msgpack"}, "model.json",
                      lambda info: isinstance(info, dict) and "converted_from" in info)


def _check_out(out: str) -> None:
    """Refuse an ``out`` that a conversion would spoil or cannot write: a file, a directory holding
    anything but an earlier conversion (a training workdir: its model/ would be shadowed), or a
    place that cannot be created or written."""
    refuse_occupied(out, _is_conversion, "the converted model", "jka convert",
                    ", so converting would overwrite or shadow it (a training workdir's model/ included)")
    parent = os.path.abspath(out)
    while not os.path.exists(parent):  # the directory the missing part of ``out`` would be created in
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UserError(f"cannot create OUT {out!r}: {parent!r} is a file; give a directory path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write OUT {out!r}: {parent!r} is not writable; give a directory you can write")


def _normalisation(given: tuple | None, known: dict, in_channels: int) -> dict:
    """model.json's ``mean``/``std``: the given pair (``--mean``/``--std``), else what the name says."""
    if given is None:
        return known
    mean, std = ([float(v) for v in side] for side in given)
    if len(mean) != in_channels or len(std) != in_channels:
        raise UserError(f"--mean and --std need one value per input channel ({in_channels}), not "
                        f"{len(mean)} and {len(std)}")
    if not all(math.isfinite(v) for v in mean + std) or min(std) <= 0:
        raise UserError(f"--mean must be finite and --std positive, not {mean} and {std}")
    return {"mean": mean, "std": std}


def convert(arch: str, src, out: str, num_classes: int, verify: bool = False, kwargs: dict | None = None,
            image_size: int | None = None, normalisation: tuple | None = None, log=print) -> dict:
    """Convert ``src`` (see :func:`jka.convert.load_torch`) into an exported model at ``out``
    (``arch``: a jka name or a CIFAR KD benchmark name, recorded as jka's).

    ``normalisation`` ``(mean, std)``: the input normalisation the checkpoint was trained with, for
    model.json; without it, the one the name says (timm's configuration, the CIFAR KD zoo's loader) if any.
    ``out`` must be new, empty or an earlier conversion (replaced). The options and ``out`` are
    checked before the checkpoint is read; with ``verify`` the PyTorch twin is compared first and a
    disagreement beyond 1e-4 (relative to the logit scale) raises :class:`UserError` without writing
    anything. Returns ``{'out', 'tensors', 'in_channels', 'verify'}``.
    """
    kwargs, source, timm_name, info = dict(kwargs or {}), arch, None, {}
    if timm_models.is_timm(arch):  # timm's own network: jka's counterpart, timm's normalisation
        timm_name, arch, kwargs = timm_models.resolve(arch, kwargs)
        info = timm_models.normalisation(timm_name)
    else:
        info = families.known_normalisation(arch)
        arch = families.arch_name(arch)  # the CIFAR KD benchmark's names (ResNet50, wrn_40_2, ...) too
    _check_options(arch, num_classes, kwargs, image_size)
    _check_out(out)
    where = repr(os.fspath(src)) if isinstance(src, (str, os.PathLike)) else "the given state dict"
    original = read_state_dict(src)
    state = original if timm_name is None else timm_models.rename_state(timm_name, original)
    in_channels = input_channels(arch, num_classes, kwargs, state)
    info = _normalisation(normalisation, info, in_channels)
    variables = convert_state_dict(state, arch, num_classes, kwargs, in_channels, where)
    result = {"out": out, "tensors": len(state), "in_channels": in_channels, "verify": None}
    if verify:
        twin = None if timm_name is None else timm_models.twin(timm_name, num_classes, kwargs, original)
        report = verify_fn(arch, num_classes, variables, state, kwargs, in_channels, image_size, twin=twin)
        result["verify"] = report
        log(format_report(report))
        if not verify_ok(report):
            raise UserError(f"the converted {arch} disagrees with PyTorch (max |Δlogit| {report['logits']:.3g}); "
                            "nothing was written. Check --kwargs (e.g. stem_stride) and the architecture name")
    size = image_size or default_image_size(arch, kwargs)
    export_model(out, arch, num_classes, variables, classes=list(range(num_classes)), kwargs=kwargs,
                 image_shape=families.exported_image_shape(arch, kwargs, size, in_channels), source=where,
                 converted_from=source if timm_name else "pytorch", **info)
    log(f"wrote {out} ({source}{'' if source == arch else f' as {arch}'}, {num_classes} classes, {len(state)} tensors)")
    return result


verify_fn = verify  # ``convert``'s ``verify`` flag shadows the function's name inside it
