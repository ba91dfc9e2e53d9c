"""CRD (docs/methods.md, "CRD") as a method: its defaults, the batches that carry each sample's dataset
index, the negatives it draws, and a run stopped by SIGTERM and resumed that ends exactly as an
uninterrupted one (the banks and Z are checkpointed with the state), whose banks moved at the rows
of its batches and nowhere else. The formulas themselves: tests/objectives/test_crd.py."""
import os
import signal

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jka import methods, run
from jka.configs.distill.digits import CRD_DIGITS_K
from jka.data import ArrayDataset, Batches, load_split
from jka.errors import ConfigError
from jka.methods import common
from jka.methods.distill import crd
from jka.train import preemption
from jka.train.preemption import Preempted
from tests.methods.amalgamation.tiny_teachers import make_teacher
from tests.reliability.test_preemption import _same_run

TINY = ["model.kwargs={'width': 0.25}", "data.batch_size=16", "crd.K=48", "crd.dim=16", "train.progress=False",
        "train.log_every=2", "train.mesh={'data': 1, 'model': 1}"]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A random small_cnn teacher (the tests check the mechanics, not what it teaches)."""
    return make_teacher(tmp_path_factory.mktemp("crd") / "teacher", "small_cnn", 10, width=0.25)


def _cfg(teacher_dir, *more):
    return run.load("distill/digits:method=crd", [f"teachers.0.workdir={teacher_dir}", *TINY, *more])


def test_crd_is_a_method_with_the_reference_defaults():
    assert crd.Settings() == crd.Settings(crd=0.8, ce=1.0, kd=0.0, T=4.0, dim=128, K=16384, tau=0.07, momentum=0.5,
                                          negatives="other_classes")
    cfg = run.load("distill/digits:method=crd")
    assert cfg.algorithm == "crd" and len(cfg.teachers) == 1
    assert methods.get("crd").read(cfg) == crd.Settings(K=CRD_DIGITS_K)


def test_batches_carry_each_samples_dataset_index():
    rng = np.random.default_rng(0)
    ds = ArrayDataset(rng.random((50, 4, 4, 1), np.float32), rng.integers(0, 3, 50), 3)
    split = common.Split(ds, ds, (0.0,), (1.0,), [0, 1, 2])
    cfg = run.load("distill/digits:method=crd", ["data.batch_size=8"])
    batches, plain = common.batches(cfg, split, True, with_index=True), common.batches(cfg, split, True)
    for step in (0, 5, 6, 13):  # an epoch is 6 batches: both sides of its boundary
        batch = batches.host_batch(step)
        np.testing.assert_array_equal(batch["index"], batches.indices(step))
        np.testing.assert_array_equal(batch["image"], ds.images[batch["index"]])
        np.testing.assert_array_equal(batch["label"], ds.labels[batch["index"]])
        assert batch["index"].dtype == np.int32 and "index" not in plain.host_batch(step)
        np.testing.assert_array_equal(plain.host_batch(step)["image"], batch["image"])


def test_negatives_are_drawn_among_the_other_classes_or_among_all():
    labels = np.array([2, 0, 1, 2, 2, 0, 1, 1, 2, 0, 2, 1])
    index, k = np.array([0, 1, 2, 5]), 3000
    idx = np.asarray(crd.contrast_indices(jax.random.PRNGKey(0), index, labels[index], k, len(labels),
                                          crd.class_pools(labels)))
    assert idx.shape == (4, k + 1)
    np.testing.assert_array_equal(idx[:, 0], index)
    for row, i in zip(idx, index):
        others = set(np.flatnonzero(labels != labels[i]))
        assert set(row[1:]) == others  # every other-class sample is drawn, no own-class one
        counts = np.bincount(row[1:], minlength=len(labels))[sorted(others)]
        assert counts.min() > 0.7 * k / len(others)  # uniformly
    idx = np.asarray(crd.contrast_indices(jax.random.PRNGKey(1), index, None, k, len(labels)))
    assert set(idx[:, 1:].ravel()) == set(range(len(labels)))
    with pytest.raises(ConfigError, match="at least two classes"):
        crd.class_pools(np.zeros(5, np.int64))


def test_sigterm_mid_run_then_rerun_equals_uninterrupted(teacher_dir, tmp_path, monkeypatch):
    """A real SIGTERM to this process at step 7 of 14: the run checkpoints at the next step boundary
    and stops; the rerun resumes there and ends with the same summary, metrics and exported model."""
    cfg = _cfg(teacher_dir, "train.steps=14")
    run.train(cfg, str(tmp_path / "full"))

    requested = preemption.requested

    def signal_at_step_7(step, ckpt):
        if step == 7:
            os.kill(os.getpid(), signal.SIGTERM)
        return requested(step, ckpt)

    monkeypatch.setattr(preemption, "requested", signal_at_step_7)
    with pytest.raises(Preempted, match="SIGTERM at step"):
        run.train(cfg, str(tmp_path / "cut"))
    monkeypatch.setattr(preemption, "requested", requested)
    stopped = max(int(s) for s in os.listdir(tmp_path / "cut" / "checkpoints") if s.isdigit())
    assert 7 <= stopped < 14
    run.train(cfg, str(tmp_path / "cut"))
    _same_run(tmp_path / "full", tmp_path / "cut")
    full, cut = (_buffers(tmp_path / d, 14) for d in ("full", "cut"))
    for key in full:
        np.testing.assert_array_equal(full[key], cut[key])
    # both Z set (on the first batch); the rows of the 14 batches moved and renormalised, no other row
    assert full["z_s"] > 0 and full["z_t"] > 0
    batches = Batches(load_split(cfg.data, "train"), 16, int(cfg.seed))
    seen = np.zeros(len(full["bank_s"]), bool)
    seen[np.concatenate([batches.indices(k) for k in range(14)])] = True
    for side in ("bank_s", "bank_t"):
        unit = np.abs(np.linalg.norm(full[side], axis=1) - 1) < 1e-5
        np.testing.assert_array_equal(unit, seen)


def _buffers(workdir, step) -> dict:
    """The banks and Z of a run's checkpoint at ``step``, read straight from the files."""
    state = ocp.StandardCheckpointer().restore(str(workdir / "checkpoints" / str(step) / "state"))
    return {k: np.asarray(v) for k, v in state["buffers"].items()}
