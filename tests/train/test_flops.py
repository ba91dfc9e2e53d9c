"""The jaxpr FLOP count used for MFU: hand formulas, control flow, and PyTorch's count of the same ResNet step."""
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from jka.train.flops import step_flops  # noqa: E402


def conv(x, w, stride=1):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def test_conv_and_dot_match_the_formulas():
    x, w, m = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 5)), jnp.ones((5, 7))
    conv_fwd = 2 * 2 * 8 * 8 * 5 * 9 * 3
    dot = 2 * 2 * 7 * 5
    assert step_flops(lambda x, w, m: conv(x, w).mean((1, 2)) @ m, x, w, m) == conv_fwd + dot
    # gradient w.r.t. the kernel only: forward + one weight-gradient convolution of the same cost
    assert step_flops(jax.grad(lambda w: conv(x, w).sum()), w) == 2 * conv_fwd
    # w.r.t. the input too, through a strided convolution: three convolutions of the forward's cost
    fwd2 = conv_fwd / 4
    assert step_flops(jax.grad(lambda x, w: conv(x, w, 2).sum(), (0, 1)), x, w) == pytest.approx(3 * fwd2)


def test_scan_counts_every_iteration_and_cond_its_dearest_branch():
    m = jnp.ones((4, 4))

    def looped(m):
        return jax.lax.scan(lambda c, _: (c @ m, None), m, None, length=5)[0]

    assert step_flops(looped, m) == 5 * 2 * 4 * 4 * 4
    branchy = lambda p, m: jax.lax.cond(p, lambda: m @ m @ m, lambda: m)
    assert step_flops(branchy, True, m) == 2 * (2 * 4 * 4 * 4)


def test_resnet_training_step_agrees_with_pytorch_flop_counter():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from jka import models
    from jka.convert.torch_models import torch_create

    module = models.create("cifar_resnet18", 10)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16, 3)), jnp.float32)
    variables = module.init(jax.random.PRNGKey(0), x, train=False)

    def loss(params):
        logits, _ = module.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
        return jnp.mean(logits[0] ** 2) if isinstance(logits, tuple) else jnp.mean(logits ** 2)

    ours = step_flops(jax.grad(loss), variables["params"])

    net = torch_create("cifar_resnet18", 10).train()
    counter = FlopCounterMode(display=False)
    with counter:
        out = net(torch.zeros(2, 3, 16, 16))
        (out[0] if isinstance(out, tuple) else out).pow(2).mean().backward()
    theirs = counter.get_total_flops()
    assert ours == pytest.approx(theirs, rel=0.01)
