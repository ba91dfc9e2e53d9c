"""Attribution maps sharded over 8 (fake CPU) devices equal the single-device maps."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from jka import models
    from jka.train.mesh import make_mesh
    from jka.transfer.attribution import ZooModel, attribution_maps, feature_vectors
    assert jax.device_count() == 8, jax.device_count()
    module = models.create("small_cnn", 4, width=0.25)
    variables = module.init(jax.random.PRNGKey(0), np.zeros((1, 8, 8, 1), np.float32))
    variables = {k: variables[k] for k in ("params", "batch_stats")}
    m = ZooModel("m", "small_cnn", module, variables, (0.3,), (0.4,), (8, 8, 1))
    x = np.random.default_rng(0).uniform(0, 1, (21, 8, 8, 1)).astype(np.float32)
    one, eight = make_mesh(devices=jax.devices()[:1]), make_mesh(devices=jax.devices()[:8])
    for layer in ("block2", "logits"):
        for method in ("grad_input", "saliency"):
            a = attribution_maps(m, x, layer, method, mesh=one, batch_size=16)
            b = attribution_maps(m, x, layer, method, mesh=eight, batch_size=16)
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(feature_vectors(m, x, "pooled", one), feature_vectors(m, x, "pooled", eight),
                               rtol=1e-5, atol=1e-6)
    print("OK")
""")


def test_sharded_equals_single_device():
    import jax

    if jax.device_count() >= 8:  # tests/conftest.py already gives 8 fake CPU devices
        exec(SCRIPT.replace("jax.device_count() == 8", "jax.device_count() >= 8"), {})
        return
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]
