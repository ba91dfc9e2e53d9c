"""Batches made inside a data-free step (latent codes, synthesized images) are split over the
devices like a data batch, and the step computes the same as on one device."""
import json

SHARDED_STEP = """
import json
import jax, jax.numpy as jnp, numpy as np
from jka import methods, models, run
from jka.train.teachers import Teacher
from jka.train import mesh as mesh_lib
from jka.train.loop import compile_step

module = models.create("small_cnn", 10, width=0.25)
variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)), train=False)
teacher = Teacher("small_cnn", module, variables, list(range(10)), {{"width": 0.25}})
out = {{"devices": jax.device_count()}}
for one_stage in (False, True):
    cfg = run.load("datafree/digits:method=dfad", ["train.steps=4", "dfad.kd_steps=2", "dfad.g_steps=1",
                   f"dfad.one_stage={{one_stage}}", "dfad.nz=8", "dfad.ngf=8", "model.kwargs={{'width': 0.25}}",
                   "data.batch_size=16"])
    results = {{}}
    for name, mesh in (("one", None), ("eight", mesh_lib.make_mesh())):
        program = methods.get("dfad").program(cfg, [teacher], mesh)
        state = program.init(jax.random.PRNGKey(1), {{}})
        if mesh is None:
            step = jax.jit(program.step)
        else:
            state = jax.device_put(state, mesh_lib.replicated(mesh))
            step = compile_step(program, mesh)
        hlo = step.lower(state, [variables], {{}}).compile().as_text()
        for _ in range(2):
            state, metrics = step(state, [variables], {{}})
        results[name] = (state, hlo)
    (s1, h1), (s8, h8) = results["one"], results["eight"]
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s8.params)))
    # The generator's images: 16 rows on one device; 2 rows per device when split 8 ways.
    out["one_stage" if one_stage else "two_stage"] = dict(
        diff=diff, whole_on_one="f32[16,8,8,1]" in h1, split_on_eight="f32[2,8,8,1]" in h8,
        whole_on_eight="f32[16,8,8,1]" in h8)
print(json.dumps(out))
"""


def test_generated_batches_are_split_over_devices_and_match_one_device():
    from tests.conftest import run_with_devices

    out = json.loads(run_with_devices(SHARDED_STEP.format()).strip().splitlines()[-1])
    assert out["devices"] == 8
    for mode in ("two_stage", "one_stage"):
        r = out[mode]
        assert r["whole_on_one"] and r["split_on_eight"] and not r["whole_on_eight"], (mode, r)
        assert r["diff"] <= 1e-5, (mode, r)
