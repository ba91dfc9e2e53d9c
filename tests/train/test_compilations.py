"""No method's step compiles more than once: a short ``jka train`` of each family's digits config,
with evaluations and a checkpoint between steps, ends with ``step_compilations == 1``. The loop compiles
the step ahead of time, so a later step whose arguments changed shape, dtype or sharding would not
compile again silently: the executable refuses it and the run fails.

Teachers are random models of the config's teacher architectures (exported once per module), so
the test costs compilation only; what is checked is that nothing in a state, batch or teacher
changes shape, dtype, weak type or sharding from one step to the next.
"""
import os

import jax
import jax.numpy as jnp
import pytest

from jka import models, run
from jka.data import load_split
from jka.train.export import export_model

# config → overrides that make it tiny (on top of 3 steps, eval every step, checkpoint at 2)
CASES = {
    "supervised": ("digits/teacher", []),
    "kd": ("digits/kd", []),
    "distill_hint": ("distill/digits:method=hint", []),
    "layerwise": ("amalgamation/digits:method=layerwise", []),
    "cfl": ("amalgamation/digits:method=cfl", []),
    "ffl": ("distill/digits_ffl", []),
    "gan": ("datafree/digits_gan", []),
    # data-free: a step is one compiled unit (generator + student steps, or a synthesis round)
    "dfad_one_stage": ("datafree/digits:method=dfad,one_stage=True", []),
    "dfq_two_stage": ("datafree/digits:method=dfq", []),
    "zskt_two_stage": ("datafree/digits:method=zskt", []),
    "deepinversion": ("datafree/digits:method=deepinversion",
                      ["deepinversion.steps=3", "deepinversion.kd_steps=3", "deepinversion.pool_size=48"]),
    "cmi": ("datafree/digits:method=cmi", ["cmi.steps=3", "cmi.kd_steps=3", "cmi.pool_size=48",
                                            "cmi.bank_size=64", "cmi.negatives=16"]),
}


def random_teachers(cfg, root: str):
    """Point every teacher spec at a randomly initialised export of its config's model."""
    for k, spec in enumerate(cfg.get("teachers", ())):
        tcfg = spec["config"]
        if isinstance(tcfg, str):
            tcfg = run.load(tcfg, spec.get("overrides", ()))
        n = len(spec.get("classes", None) or range(10))
        x = load_split(tcfg.data, "test").images[:1]
        module = models.create(tcfg.model.name, n, **dict(tcfg.model.get("kwargs", {})))
        variables = module.init(jax.random.PRNGKey(k), jnp.asarray(x, jnp.float32), train=False)
        variables = {c: variables[c] for c in ("params", "batch_stats") if c in variables}
        path = os.path.join(root, f"teacher_{k}")
        export_model(os.path.join(path, "model"), tcfg.model.name, n, variables,
                     kwargs=dict(tcfg.model.get("kwargs", {})), classes=list(spec.get("classes", None) or range(n)))
        spec["workdir"] = path


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_compiles_once(case, tmp_path):
    path, overrides = CASES[case]
    cfg = run.load(path, overrides)
    cfg.train.update(steps=3, eval_every=1, checkpoint_every=2, log_every=1, progress=False)
    cfg.data.batch_size = 16
    random_teachers(cfg, str(tmp_path))
    summary = run.train(cfg, str(tmp_path / "run"))
    assert summary["step"] == 3
    assert summary["step_compilations"] == 1, summary
