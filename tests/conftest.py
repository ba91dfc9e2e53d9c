"""Test setup.

Tests run on one CPU device. Sharding tests start a subprocess with 8 fake CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``, see ``run_with_devices``): XLA reads the
flag once per process, and keeping the other tests on one device keeps them fast.
"""
import os
import subprocess
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    on_accelerator = any(d.platform in ("gpu", "tpu") for d in jax.devices())
    skip = pytest.mark.skip(reason="needs a GPU or TPU")
    for item in items:
        if "accelerator" in item.keywords and not on_accelerator:
            item.add_marker(skip)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_with_devices(code: str, devices: int = 8, timeout: int = 600) -> str:
    """Run Python ``code`` in a fresh process with ``devices`` fake CPU devices; return its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JKA_")}
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
               PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout
