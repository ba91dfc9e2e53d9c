"""Test setup: 8 fake CPU devices (for sharding tests) and float32-exact matmuls.

XLA_FLAGS must be set before jax is imported anywhere, hence here at the top of conftest.
Tests run on one device unless they ask for more (``train.mesh.data``).
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    on_accelerator = any(d.platform in ("gpu", "tpu") for d in jax.devices())
    skip = pytest.mark.skip(reason="needs a GPU or TPU")
    for item in items:
        if "accelerator" in item.keywords and not on_accelerator:
            item.add_marker(skip)
