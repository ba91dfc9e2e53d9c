"""NetGraft: the normalised logit loss, few-shot sampling, grafting, one phase's step."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka.train.teachers import Teacher
from jka.algorithms.distill.netgraft import (NetGraftPhase, block_param_names, default_batch_size, few_shot_indices,
                                     normalized_logit_loss)
from jka.errors import ConfigError
from jka.models.vgg16_graft import vgg16_graft, vgg16_teacher
from jka.recipes import base_config

WIDTH = 0.125


def test_normalized_logit_loss_matches_numpy():
    s = np.array([[3.0, 4.0], [1.0, 0.0]])
    t = np.array([[0.0, 2.0], [0.0, -5.0]])
    # rows: (0.6, 0.8) vs (0, 1) → 0.36 + 0.04; (1, 0) vs (0, -1) → 2
    assert float(normalized_logit_loss(s, t)) == pytest.approx(0.4 + 2.0, rel=1e-6)
    assert float(normalized_logit_loss(2.5 * t, t)) == pytest.approx(0.0, abs=1e-6)


def test_few_shot_indices():
    labels = np.repeat(np.arange(4), 7)
    a = few_shot_indices(labels, 3, seed=0)
    assert len(a) == 12 and all(np.sum(labels[a] == c) == 3 for c in range(4))
    np.testing.assert_array_equal(a, few_shot_indices(labels, 3, seed=0))
    assert not np.array_equal(a, few_shot_indices(labels, 3, seed=1))
    with pytest.raises(ConfigError):
        few_shot_indices(labels, 8, seed=0)
    assert default_batch_size(1) == 6 and default_batch_size(10) == 64


def _teacher(size=16):
    module = vgg16_teacher(10, width=WIDTH)
    variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 1)))
    return Teacher("vgg16_teacher", module, variables, list(range(10)), {"width": WIDTH})


def _cfg(start, stop):
    cfg = base_config(algorithm="netgraft")
    cfg.data.image_size = 16
    cfg.data.batch_size = 20
    cfg.data.augment.crop_pad = 2
    cfg.model.name = "vgg16_graft"
    cfg.model.kwargs = dict(width=WIDTH)
    cfg.optim.name = "adam"
    cfg.optim.lr = 1e-3
    cfg.optim.weight_decay = 0.0
    cfg.train.steps = 40
    cfg.netgraft = dict(n_per_class=2, sample_seed=0, start=start, stop=stop, eval_batch_size=256)
    return cfg


def test_graft_of_copied_blocks_reproduces_the_teacher():
    """Blocks 0–2 have the teacher's widths: with the teacher's weights and identity adapters the
    grafted network is the teacher, and the loss is 0."""
    teacher = _teacher()
    algo = NetGraftPhase(_cfg(1, 3), [teacher])
    batch = {"image": algo.train_ds.images[:4]}
    state = algo.init(jax.random.PRNGKey(0), batch)
    params = dict(state.params)
    tp = teacher.variables["params"]
    for b in (1, 2):
        for name in block_param_names(b):
            if name.startswith("convs"):
                params[name] = tp[name]
            else:
                c = params[name]["kernel"].shape[-1]
                params[name] = {"kernel": jnp.eye(c).reshape(1, 1, c, c)}
    x = algo.prepare(None, batch["image"], augment=False)
    s = algo.grafted_logits(params, state.batch_stats, teacher.variables, x)
    t, _ = teacher(teacher.variables, x)
    np.testing.assert_allclose(s, t, rtol=1e-4, atol=1e-5)
    loss, _ = algo.loss(params, state.batch_stats, [teacher.variables], x, batch, None)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)


def test_block_phase_trains_only_its_block():
    teacher = _teacher()
    algo = NetGraftPhase(_cfg(3, 4), [teacher])  # the thinner block 4 with both adapters
    assert len(algo.train_ds) == 20 and not algo.uses_labels
    batches = algo.train_batches(0)
    state = algo.init(jax.random.PRNGKey(0), batches.host_batch(0))
    # the student's classifier is the teacher's
    np.testing.assert_array_equal(state.params["classifier_fc2"]["kernel"],
                                  teacher.variables["params"]["classifier_fc2"]["kernel"])
    start = state.params
    step = jax.jit(algo.train_step)
    losses = []
    for k in range(40):
        state, m = step(state, [teacher.variables], batches.host_batch(k))
        losses.append(float(m["loss"]))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    for name in start:
        same = all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), start[name], state.params[name])))
        assert same == (name not in block_param_names(3)), name


def test_wrong_teacher_or_range_is_a_config_error():
    module = vgg16_graft(10, width=WIDTH)
    v = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)))
    with pytest.raises(ConfigError):
        NetGraftPhase(_cfg(0, 1), [Teacher("vgg16_graft", module, v, list(range(10)))])
    with pytest.raises(ConfigError):
        NetGraftPhase(_cfg(3, 3), [_teacher()])


def test_job_chains_its_phases_skips_finished_ones_and_evaluates_the_whole_student(tmp_path):
    import json
    import os

    from jka import run
    from jka.recipes.distill import digits_netgraft
    from jka.train.export import export_model

    teacher = _teacher()
    export_model(str(tmp_path / "teacher" / "model"), "vgg16_teacher", 10,
                 {"params": teacher.variables["params"], "batch_stats": teacher.variables.get("batch_stats", {})},
                 kwargs={"width": WIDTH}, classes=list(range(10)))
    cfg = digits_netgraft(width=WIDTH)
    cfg.teachers = [dict(workdir=str(tmp_path / "teacher"))]
    cfg.netgraft.update(n_per_class=1, block_steps=2, chain_steps=2)
    cfg.train.update(progress=False, log_every=1)
    summary = run.train(cfg, str(tmp_path / "job"))
    assert [p["phase"] for p in summary["phases"]] == ["block0", "block1", "block2", "block3", "block4",
                                                       "chain0-1", "chain0-2", "chain0-3", "chain0-4"]
    assert summary["step"] == 18 and summary["labels_used"] is False
    last = tmp_path / "job" / "phase8_chain0-4"
    assert json.load(open(last / "model" / "model.json"))["few_shot_indices"]
    stamp = os.path.getmtime(last / "summary.json")
    assert run.train(cfg, str(tmp_path / "job"))["eval"] == summary["eval"]   # every phase finished: none reruns
    assert os.path.getmtime(last / "summary.json") == stamp
    ev = run.evaluate(cfg, str(tmp_path / "job"))
    assert ev["eval"]["student_accuracy"] == pytest.approx(summary["eval"]["accuracy"])
