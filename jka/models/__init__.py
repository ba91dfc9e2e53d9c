"""The model zoo: Flax modules (NHWC) that return ``(logits, features)``.

``features`` maps stage names to activations plus ``'pooled'``, the vector fed to the classifier.
Logits are float32; ``dtype`` is the compute dtype (parameters stay float32).
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from jka import errors
from jka.models import cifar_resnet, mobilenetv2, resnet, resnet_cifar_small, segnet, small_cnn, vgg, vgg16_graft, wrn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "cifar_resnet18": cifar_resnet.cifar_resnet18,
    "cifar_resnet34": cifar_resnet.cifar_resnet34,
    "wrn16_1": wrn.wrn16_1,
    "wrn16_2": wrn.wrn16_2,
    "wrn40_1": wrn.wrn40_1,
    "wrn40_2": wrn.wrn40_2,
    "vgg8_bn": vgg.vgg8_bn,
    "vgg11_bn": vgg.vgg11_bn,
    "vgg13_bn": vgg.vgg13_bn,
    "mobilenetv2": mobilenetv2.mobilenetv2,
    "mobilenetv2_x0_5": mobilenetv2.mobilenetv2_x0_5,
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "small_cnn": small_cnn.small_cnn,
    **resnet_cifar_small.MODELS,
    **vgg16_graft.MODELS,
    "segnet": segnet.segnet,
    "branchy_segnet": segnet.branchy_segnet,
}


def available() -> list[str]:
    """Names accepted by :func:`create`."""
    return sorted(_REGISTRY)


def create(name: str, num_classes: int, dtype=jnp.float32, **kwargs) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs; ``kwargs`` go to the model (e.g. ``width``)."""
    if name not in _REGISTRY:
        raise errors.unknown_choice("model", name, available())
    return _REGISTRY[name](num_classes, dtype=dtype, **kwargs)
