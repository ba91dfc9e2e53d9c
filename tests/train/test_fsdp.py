"""Large teachers: arrays split over the mesh's ``model`` axis give the same training as replicated ones."""
import json

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from jka import run
from jka.train import mesh as mesh_lib

FSDP_RUN = """
import json
from tests.train.test_fsdp import fsdp_vs_replicated
print(json.dumps(fsdp_vs_replicated({root!r})))
"""


def fsdp_vs_replicated(root: str) -> dict:
    """The same KD run on a (data=2, model=4) mesh with teachers and state split, and on (data=2, model=1)."""
    from tests.helpers import tiny_kd

    def cfg(model: int):
        c = tiny_kd(steps=6, teacher_steps=10, checkpoint_every=3, log_every=3)
        c.teachers[0]["workdir"] = f"{root}/teacher_a"
        c.teachers[1]["workdir"] = f"{root}/teacher_b"
        c.train.mesh = dict(data=2, model=model)
        c.train.shard = dict(teachers=True, state=True, min_size=256)
        return c

    split = run.train(cfg(4), f"{root}/split")
    plain = run.train(cfg(1), f"{root}/plain")

    # What the split run holds: every large teacher and state array split 4 ways over `model`.
    built = run.prepare(cfg(4), f"{root}/split")  # restores the final checkpoint into the split layout
    leaves = jax.tree.leaves(built.teacher_vars) + jax.tree.leaves(built.state.params)
    large = [a for a in leaves if a.size >= 256]
    split_ok = all("model" in tuple(a.sharding.spec) and
                   a.addressable_shards[0].data.size * 4 == a.size for a in large)
    other = run.prepare(cfg(1), f"{root}/plain")
    params_diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                      for a, b in zip(jax.tree.leaves(built.state.params), jax.tree.leaves(other.state.params)))
    built.ckpt.close()
    other.ckpt.close()
    return {"devices": jax.device_count(), "large_leaves": len(large), "split_ok": split_ok,
            "restored_step": built.start, "params_diff": params_diff,
            "split_eval": split["eval"], "plain_eval": plain["eval"],
            "split_loss": split["train"]["loss"], "plain_loss": plain["train"]["loss"],
            "compilations": [split["step_compilations"], plain["step_compilations"]]}


def test_split_teacher_and_state_train_like_replicated(tmp_path):
    from tests.conftest import run_with_devices

    out = json.loads(run_with_devices(FSDP_RUN.format(root=str(tmp_path))).strip().splitlines()[-1])
    assert out["devices"] == 8 and out["large_leaves"] >= 6 and out["split_ok"], out
    assert out["restored_step"] == 6 and out["params_diff"] <= 1e-5, out
    assert abs(out["split_loss"] - out["plain_loss"]) <= 1e-5 * max(1.0, abs(out["plain_loss"])), out
    for k, v in out["plain_eval"].items():
        assert abs(out["split_eval"][k] - v) <= 1e-6, (k, out)
    assert out["compilations"] == [1, 1]


def test_fsdp_rule_splits_the_largest_divisible_dimension():
    devices = np.asarray(jax.devices()[:1] * 1)
    mesh = jax.sharding.Mesh(devices.reshape(1, 1), ("data", "model"))
    assert mesh_lib.fsdp_sharding({"w": jnp.zeros((64, 64))}, mesh, 1)["w"].spec == P()  # model = 1

    class FakeMesh:  # only .shape is read to choose the dimension; NamedSharding needs a real mesh
        shape = {"model": 4}

    import jka.train.mesh as m
    made = []
    orig = m.NamedSharding
    m.NamedSharding = lambda mesh, spec: made.append(spec) or spec
    try:
        tree = {"kernel": jnp.zeros((3, 3, 6, 32)), "fc": jnp.zeros((40, 10)), "odd": jnp.zeros((5, 7, 9)),
                "bias": jnp.zeros((32,))}
        out = m.fsdp_sharding(tree, FakeMesh(), min_size=100)
    finally:
        m.NamedSharding = orig
    assert out["kernel"] == P(None, None, None, "model")  # output channels, the largest divisible
    assert out["fc"] == P("model", None)                     # 40 is divisible by 4, 10 is not
    assert out["odd"] == P()                                 # no dimension divisible by 4
    assert out["bias"] == P()                                # below min_size
