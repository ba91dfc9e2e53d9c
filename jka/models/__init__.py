"""The model zoo: Flax modules (NHWC) that return ``(logits, features)``.

``features`` maps stage names to activations plus ``'pooled'``, the vector fed to the classifier.
Logits are float32; ``dtype`` is the compute dtype (parameters stay float32).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from jka import errors
from jka.config import fits
from jka.models import (efficientnet, mobilenetv2, resnet, resnet_cifar_small, segnet, shufflenet, small_cnn, vgg,
                        vgg16_graft, vit, wrn)

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    **resnet.MODELS,
    **{f"wrn{d}_{k}": wrn.factory(d, k) for d in (16, 40) for k in (1, 2)},
    **{f"vgg{d}_bn": vgg.factory(cfg) for d, cfg in zip((8, 11, 13, 16, 19), "SABDE")},
    "mobilenetv2": mobilenetv2.MobileNetV2,
    "mobilenetv2_x0_5": lambda num_classes, **kw: mobilenetv2.MobileNetV2(num_classes, 0.5, **kw),
    "mobile_half": mobilenetv2.ZooMobileNetV2,
    "shufflev1": shufflenet.ShuffleNetV1,
    "shufflev2": shufflenet.ShuffleNetV2,
    "small_cnn": small_cnn.SmallCNN,
    **resnet_cifar_small.MODELS,
    **vgg16_graft.MODELS,
    "segnet": segnet.SegNet,
    "branchy_segnet": segnet.branchy_segnet,
    "efficientnet_b0": efficientnet.EfficientNet,
    "vit": vit.ViT,
}


def available() -> list[str]:
    """Names accepted by :func:`create`."""
    return sorted(_REGISTRY)


def create(name: str, num_classes: int, dtype=jnp.float32, **kwargs) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs; ``kwargs`` go to the model (e.g. ``width``)."""
    if name not in _REGISTRY:
        raise errors.unknown_choice("model", name, available())
    return _REGISTRY[name](num_classes, dtype=dtype, **kwargs)


def check_kwargs(name: str, kwargs: dict, num_classes: int = 2, where: str = "model.kwargs") -> None:
    """Refuse ``kwargs`` model ``name`` does not take, or of another type than the option's
    default (found here, not at the first traced step)."""
    if not isinstance(kwargs, dict):
        raise errors.ConfigError(f"{where} must be a dict of options of {name!r}, not {kwargs!r}")
    if name not in _REGISTRY:
        raise errors.unknown_choice("model", name, available())
    try:
        module = _REGISTRY[name](num_classes, **kwargs)
    except TypeError as err:
        raise errors.ConfigError(f"{where} {kwargs!r} does not fit model {name!r} ({err})") from None
    fields = {f.name: f for f in dataclasses.fields(module)}
    for key, value in kwargs.items():
        default = getattr(fields.get(key), "default", None)
        if key in fields and default is not dataclasses.MISSING and not (callable(default) or fits(value, default)):
            raise errors.ConfigError(f"{where}.{key}={value!r} for model {name!r}: expected a "
                                     f"{type(default).__name__} like its default {default!r}")
