"""NetGraft: the normalised logit loss, few-shot sampling, grafting, one phase's step, the job, settings."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import run
from jka.configs.common import config
from jka.errors import ConfigError
from jka.methods.distill.netgraft import (PHASE, block_param_names, default_batch_size, few_shot_indices,
                                          grafted_logits, normalized_logit_loss)
from jka.methods.common import preparer
from jka.models.vgg16_graft import vgg16_graft, vgg16_teacher
from jka.train.teachers import Teacher

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


def _cfg():
    cfg = run.complete(config("netgraft", netgraft=dict(n_per_class=2, sample_seed=0, eval_batch_size=256)))
    cfg.data.image_size = 16
    cfg.data.batch_size = 20
    cfg.data.augment.crop_pad = 2
    cfg.model.name = "vgg16_graft"
    cfg.model.kwargs = dict(width=WIDTH)
    cfg.optim.name = "adam"
    cfg.optim.lr = 1e-3
    cfg.optim.weight_decay = 0.0
    cfg.train.steps = 40
    return cfg


def _phase(start, stop, teacher, cfg=None):
    return PHASE.program(cfg or _cfg(), [teacher], None, dict(start=start, stop=stop))


def test_graft_of_copied_blocks_reproduces_the_teacher():
    """Blocks 0–2 have the teacher's widths: with the teacher's weights and identity adapters the
    grafted network is the teacher, and the loss is 0."""
    teacher = _teacher()
    program = _phase(1, 3, teacher)
    batch = {"image": program.data.train.images[:4]}
    state = program.init(jax.random.PRNGKey(0), batch)
    params = dict(state.params["student"])
    tp = teacher.variables["params"]
    for b in (1, 2):
        for name in block_param_names(b):
            if name.startswith("convs"):
                params[name] = tp[name]
            else:
                c = params[name]["kernel"].shape[-1]
                params[name] = {"kernel": jnp.eye(c).reshape(1, 1, c, c)}
    x = preparer(_cfg(), program.data, jnp.float32)(None, batch["image"], augment=False)
    student = {"params": params, "batch_stats": state.batch_stats["student"]}
    s = grafted_logits(teacher.module, vgg16_graft(10, width=WIDTH), student, teacher.variables, x, 1, 3)
    t, _ = teacher(teacher.variables, x)
    np.testing.assert_allclose(s, t, rtol=1e-4, atol=1e-5)
    assert float(normalized_logit_loss(s, t)) == pytest.approx(0.0, abs=1e-6)


def test_block_phase_trains_only_its_block():
    teacher = _teacher()
    program = _phase(3, 4, teacher)  # the thinner block 4 with both adapters
    assert len(program.data.train) == 20 and not program.uses_labels
    batches = program.batches
    state = program.init(jax.random.PRNGKey(0), batches.host_batch(0))
    # the student's classifier is the teacher's
    np.testing.assert_array_equal(state.params["student"]["classifier_fc2"]["kernel"],
                                  teacher.variables["params"]["classifier_fc2"]["kernel"])
    start = state.params["student"]
    step = jax.jit(program.step)
    losses = []
    for k in range(40):
        state, m = step(state, [teacher.variables], batches.host_batch(k))
        losses.append(float(m["loss"]))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    for name in start:
        same = all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), start[name],
                                                state.params["student"][name])))
        assert same == (name not in block_param_names(3)), name


def test_wrong_teacher_or_range_is_a_config_error():
    module = vgg16_graft(10, width=WIDTH)
    v = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)))
    with pytest.raises(ConfigError):
        _phase(0, 1, Teacher("vgg16_graft", module, v, list(range(10))))
    with pytest.raises(ConfigError):
        _phase(3, 3, _teacher())


def _section(**values):
    """A change of ``cfg.netgraft`` as a config file writes it (no ConfigDict type check)."""
    return lambda c: setattr(c, "netgraft", {**c.netgraft.to_dict(), **values})


@pytest.mark.parametrize("change, needle", [
    (_section(no_such_key=1), "netgraft.no_such_key is not a setting"),
    (_section(start=0), "netgraft.start is not a setting"),  # a phase option, not a setting
    (_section(n_per_class=0), "netgraft.n_per_class=0 is not valid"),
    (_section(eval_every_phase="no"), "netgraft.eval_every_phase='no' is not valid"),
    (_section(batch_size=2.5), "netgraft.batch_size=2.5 is not valid"),
    (lambda c: setattr(c.model, "name", "small_cnn"), "netgraft trains model.name='vgg16_graft'"),
    (lambda c: setattr(c, "teachers", []), "netgraft needs exactly 1 entry in teachers"),
])
def test_bad_settings_are_refused_before_any_work(change, needle):
    cfg = run.load("distill/digits_netgraft")
    change(cfg)
    with pytest.raises(ConfigError, match=needle):
        run.validate(cfg)


def test_job_chains_its_phases_skips_finished_ones_and_evaluates_the_whole_student(tmp_path):
    import json
    import os

    from jka.train.export import export_model

    teacher = _teacher()
    export_model(str(tmp_path / "teacher" / "model"), "vgg16_teacher", 10,
                 {"params": teacher.variables["params"], "batch_stats": teacher.variables.get("batch_stats", {})},
                 kwargs={"width": WIDTH}, classes=list(range(10)))
    cfg = run.load("distill/digits_netgraft:width=0.125", [
        f"teachers=[{{'workdir': '{tmp_path / 'teacher'}'}}]", "netgraft.n_per_class=1", "netgraft.block_steps=2",
        "netgraft.chain_steps=2", "train.progress=False", "train.log_every=1"])
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
