"""Ring buffers, views, teacher instance means and sample grids (jka/methods/datafree/synthesis.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import models
from jka.train.teachers import Teacher
from jka.errors import ConfigError
from jka.methods.datafree.synthesis import (SCAN_UNROLL_MAX, RingBuffer, from_pool, global_view, local_view,
                                           scan_steps, teacher_inversion_forward, to_pool)
from jka.data.images import save_grid


def test_ring_buffer_add_wraps_and_counts():
    buf = RingBuffer.create(5, (2,))
    buf = buf.add(jnp.ones((3, 2)) * jnp.arange(1, 4)[:, None])          # slots 0..2 = 1, 2, 3
    assert int(buf.count) == 3 and int(buf.ptr) == 3
    buf = buf.add(jnp.ones((4, 2)) * jnp.arange(4, 8)[:, None])          # 4, 5 → slots 3, 4; 6, 7 → 0, 1
    assert int(buf.count) == 5 and int(buf.ptr) == 2
    np.testing.assert_array_equal(np.asarray(buf.data[:, 0]), [6, 7, 3, 4, 5])
    with pytest.raises(ConfigError):
        buf.add(jnp.zeros((6, 2)))


def test_ring_buffer_sampling_only_valid_items():
    buf = RingBuffer.create(100, (1,)).add(jnp.arange(1, 8, dtype=jnp.float32)[:, None])
    s = np.asarray(buf.sample(jax.random.PRNGKey(0), 500))[:, 0]
    assert set(s.tolist()) == set(range(1, 8))                              # never an empty (0) slot
    items, valid = buf.sample_distinct(jax.random.PRNGKey(1), 10)
    items, valid = np.asarray(items)[:, 0], np.asarray(valid)
    assert valid.sum() == 7 and valid[:7].all()                             # valid ones first
    assert sorted(items[valid].tolist()) == list(range(1, 8))               # distinct, all of them
    full = RingBuffer.create(50, (1,)).add(jnp.arange(50, dtype=jnp.float32)[:, None])
    items, valid = full.sample_distinct(jax.random.PRNGKey(2), 20)
    assert np.asarray(valid).all() and len(set(np.asarray(items)[:, 0].tolist())) == 20


def test_pool_uint8_roundtrip():
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, 8, 8, 3))
    back = from_pool(to_pool(x, jnp.uint8))
    assert float(jnp.max(jnp.abs(back - x))) <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("view", ["global", "local"])
def test_views_keep_shape_and_range(view):
    x = jax.random.uniform(jax.random.PRNGKey(0), (16, 8, 8, 3))
    k = jax.random.PRNGKey(1)
    y = global_view(k, x, 2, True) if view == "global" else local_view(k, x, (0.25, 1.0))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not np.allclose(np.asarray(y), np.asarray(x))


def test_local_view_full_scale_without_flip_is_identity():
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, 8, 8, 1))
    y = local_view(jax.random.PRNGKey(3), x, (1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    np.testing.assert_allclose(np.asarray(y), np.asarray(x), atol=1e-5)


def test_teacher_instance_means_are_bn_inputs():
    m = models.create("small_cnn", 10)
    v = m.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))
    t = Teacher("small_cnn", m, v, list(range(10)))
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 8, 8, 1))
    logits, _, r_bn, means = teacher_inversion_forward(t, v, x, True)
    assert means.shape == (3, 32 + 64 + 128)
    # the first BN's input is conv1(x): its per-sample spatial mean
    conv1 = jax.lax.conv_general_dilated(x, v["params"]["conv1"]["kernel"], (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(np.asarray(means[:, :32]), np.asarray(conv1.mean((1, 2))), rtol=1e-4, atol=1e-5)
    assert np.isfinite(float(r_bn)) and float(r_bn) > 0


@pytest.mark.parametrize("arch", ["cifar_resnet18", "wrn16_1"])
def test_instance_means_follow_the_call_order_of_the_batchnorms(arch):
    """CMI's feature: the per-sample spatial means of every BatchNorm's input, in the order they run
    (recorded here independently by intercepting each BatchNorm call)."""
    import flax.linen as nn

    from jka.models.layers import BatchNorm

    m = models.create(arch, 10)
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 8, 8, 3))
    v = m.init(jax.random.PRNGKey(0), x, train=False)
    v = {"params": v["params"], "batch_stats": v["batch_stats"]}
    seen = {}  # module path → the per-sample mean of its input, in call order (once: super().__call__ too)

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, BatchNorm) and context.method_name == "__call__":
            seen.setdefault(context.module.scope.path, args[0].astype(jnp.float32).mean(axis=(1, 2)))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        m.apply(v, x, train=False, mutable=["bn_stats"])
    got = teacher_inversion_forward(Teacher(arch, m, v, list(range(10))), v, x, True)[3]
    np.testing.assert_allclose(np.asarray(got), np.asarray(jnp.concatenate(list(seen.values()), -1)), rtol=1e-6, atol=1e-6)


def test_save_grid(tmp_path):
    from PIL import Image

    p = save_grid(str(tmp_path / "g.png"), np.random.rand(10, 8, 8, 1), nrow=5)
    img = Image.open(p)
    assert img.size[0] > img.size[1] > 32


@pytest.mark.parametrize("n", [3, SCAN_UNROLL_MAX + 3])
def test_scan_steps_equals_a_python_loop(n):
    # A carried update with per-step inputs: x ← 0.5·x + k, outputs x², for k = 0..n−1.
    def body(x, k):
        x = 0.5 * x + k
        return x, x * x

    carry, ys = jax.jit(lambda: scan_steps(body, jnp.float32(1.0), jnp.arange(n, dtype=jnp.float32)))()
    x, want = 1.0, []
    for k in range(n):
        x = 0.5 * x + k
        want.append(x * x)
    np.testing.assert_allclose(float(carry), x, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ys), want, rtol=1e-6)
    c2, ys2 = scan_steps(lambda c, _: (c + 1, c), jnp.int32(0), length=n)  # length instead of xs
    assert int(c2) == n and np.asarray(ys2).tolist() == list(range(n))
