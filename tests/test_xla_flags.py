"""jka's default XLA flags: when they are added, and that they do what they are for."""
import os
import subprocess
import sys

import pytest

from jka import xla_flags

MEASURED = xla_flags.MEASURED_JAXLIB[0] + "2"


def test_added_on_a_measured_jaxlib_after_the_users_flags():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    assert xla_flags.apply(env, MEASURED) == [xla_flags.CPU_CONVOLUTION]
    assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=8 " + xla_flags.CPU_CONVOLUTION
    assert xla_flags.apply(env, MEASURED) == [] and env["XLA_FLAGS"].count("ynn") == 1  # once only
    empty = {}
    xla_flags.apply(empty, MEASURED)
    assert empty == {"XLA_FLAGS": xla_flags.CPU_CONVOLUTION}


@pytest.mark.parametrize("env, version", [
    ({"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=individual_dot"}, MEASURED),  # the user's choice
    ({"JKA_XLA_DEFAULTS": "0"}, MEASURED),  # opted out
    ({}, "0.11.0"),  # a jaxlib the flag was not measured on (it could abort on an unknown flag)
    ({}, "0.9.2"),
])
def test_not_added(env, version):
    assert xla_flags.wanted(env, version) == []


PROBE = """
import jax, jax.numpy as jnp
from jax import lax
x, w = jax.ShapeDtypeStruct((64, 32, 32, 64), jnp.float32), jax.ShapeDtypeStruct((3, 3, 64, 64), jnp.float32)
conv = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
grads = jax.jit(jax.grad(lambda x, w: (conv(x, w) ** 2).sum(), argnums=(0, 1)))
print(grads.lower(x, w).compile().as_text().count("__ynn_fusion"))
"""


@pytest.mark.skipif(not xla_flags.wanted({}), reason="this jaxlib is not one the flag was measured on")
def test_the_flag_keeps_convolutions_off_ynnpack():
    """Compiled for this CPU, the convolution and its gradients leave YNNPACK only with the flag: the
    flag exists in this jaxlib and still means what jka relies on."""
    def ynn_kernels(extra_env):
        env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JKA_XLA_DEFAULTS")}
        done = subprocess.run([sys.executable, "-c", "from jka import xla_flags; xla_flags.apply()\n" + PROBE],
                              env={**env, "JAX_PLATFORMS": "cpu", **extra_env}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return int(done.stdout.split()[-1])

    if ynn_kernels({"JKA_XLA_DEFAULTS": "0"}) == 0:
        pytest.skip("XLA puts no convolution on YNNPACK on this CPU: nothing for the flag to change")
    assert ynn_kernels({}) == 0
