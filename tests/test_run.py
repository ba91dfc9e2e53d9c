"""What a user can run: the registry, config arguments, phases (finished ones skipped, the
``train.init_from`` hand-over, resume first), a job evaluated through its final phase, and the GAN
resuming through the shared loop like every other method."""
import json
import os

import jax
import numpy as np
import pytest

from jka import methods, run
from jka.data import Batches
from jka.errors import ConfigError
from jka.train.checkpoint import Checkpointer
from jka.train.export import load_model
from tests.helpers import tiny_teacher
from tests.methods.amalgamation.tiny_teachers import make_teacher

USER_NAMES = {"supervised", "dense_supervised", "kd", "layerwise", "cfl", "adaptive", "branching", "distill", "ffl",
              "netgraft", "dafl", "zskt", "dfad", "dfq", "deepinversion", "cmi", "gan", "datafree_amalgamation",
              "transfer_study", "dist", "crd", "dkd", "reviewkd"}


def test_registry_names_what_users_run_and_no_internal_phase():
    assert set(methods.names()) == USER_NAMES
    for name, method in methods.METHODS.items():
        assert method.name == name and (method.build is None) == method.is_job, name
    for phase in ("adaptive_component", "adaptive_student", "branching_search", "netgraft_phase", "dfa_dual"):
        with pytest.raises(ConfigError, match=f"unknown algorithm '{phase}'") as err:
            methods.get(phase)
        choices = str(err.value).split("valid choices: ")[1].split(", ")
        assert set(choices) == USER_NAMES


def test_config_arguments_pick_variants_and_bad_ones_say_what_exists():
    assert run.load("datafree/digits:method=cmi").algorithm == "cmi"
    cfg = run.load("datafree/digits:method=dfad,one_stage=True")
    assert cfg.algorithm == "dfad" and cfg.dfad.one_stage is True
    assert run.load("distill/digits:at").distill.method == "at"  # name:value = the first argument
    with pytest.raises(ConfigError, match="has no argument pair; its arguments: method='dfad', one_stage=False"):
        run.load("datafree/digits:pair=x")
    with pytest.raises(ConfigError, match="unknown method .*valid choices: .*cmi"):
        run.load("datafree/digits:method=magic")


def test_a_finished_run_is_not_run_again(tmp_path):
    cfg = tiny_teacher(steps=4)
    first = run.train(cfg, str(tmp_path / "t"))
    stamp = os.path.getmtime(tmp_path / "t" / "summary.json")
    again = run.train(cfg, str(tmp_path / "t"))
    assert again == json.loads(json.dumps(first)) and os.path.getmtime(tmp_path / "t" / "summary.json") == stamp


def test_init_from_starts_from_an_exported_model_and_a_checkpoint_wins(tmp_path, monkeypatch):
    source = tiny_teacher(steps=6)
    run.train(source, str(tmp_path / "source"))
    # lr 0: a run started from the source's model keeps its weights (its BN statistics move)
    frozen = tiny_teacher(steps=1)
    frozen.optim.lr = 0.0
    frozen.train.init_from = str(tmp_path / "source")
    run.train(frozen, str(tmp_path / "frozen"))
    a, _ = load_model(str(tmp_path / "source"))
    b, _ = load_model(str(tmp_path / "frozen"))
    jax.tree.map(np.testing.assert_array_equal, a["params"], b["params"])

    # resume > init_from: an interrupted run continues from its checkpoint, whatever init_from says
    def cfg(steps, init_from):
        c = tiny_teacher(steps=steps, checkpoint_every=3)
        c.train.init_from = init_from
        return c

    whole = run.train(cfg(6, str(tmp_path / "source")), str(tmp_path / "whole"))
    original = Batches.host_batch

    def crash_at_4(self, step):
        if step == 4:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(Batches, "host_batch", crash_at_4)
    with pytest.raises(KeyboardInterrupt):
        run.train(cfg(6, str(tmp_path / "source")), str(tmp_path / "resumed"))
    monkeypatch.setattr(Batches, "host_batch", original)
    assert Checkpointer(str(tmp_path / "resumed")).latest_step() == 3
    resumed = run.train(cfg(6, str(tmp_path / "frozen")), str(tmp_path / "resumed"), allow_changed=["train.init_from"])
    assert resumed["eval"] == whole["eval"] and resumed["train"] == whole["train"]

    wrong = cfg(2, str(tmp_path / "source"))
    wrong.model.kwargs = {"width": 0.5}
    with pytest.raises(ConfigError, match="train.init_from holds a 'small_cnn' model whose parameters do not match"):
        run.train(wrong, str(tmp_path / "wrong"))


def test_a_job_skips_its_finished_phases_and_evaluates_its_final_phase(tmp_path):
    a = make_teacher(tmp_path / "a", "small_cnn", 7, width=0.25)
    b = make_teacher(tmp_path / "b", "small_cnn", 7, seed=1, width=0.25)
    cfg = run.load("amalgamation/digits:method=adaptive", ["train.steps=4", "adaptive.component_steps=3"])
    cfg.teachers = [dict(workdir=a, classes=list(range(7))), dict(workdir=b, classes=list(range(3, 10)))]
    cfg.model.kwargs = {"width": 0.25}
    cfg.data.batch_size = 32
    cfg.train.update(progress=False, log_every=2)
    summary = run.train(cfg, str(tmp_path / "job"))
    assert summary["algorithm"] == "adaptive" and set(summary["phases"]) == {"component_0", "component_1",
                                                                              "component_2"}
    ckpt = tmp_path / "job" / "component_1" / "checkpoints"
    stamp = os.path.getmtime(ckpt)
    assert run.train(cfg, str(tmp_path / "job"))["eval"] == summary["eval"]
    assert os.path.getmtime(ckpt) == stamp  # the finished phases were not trained again
    ev = run.evaluate(cfg, str(tmp_path / "job"))
    assert ev["step"] == 4 and ev["eval"]["accuracy"] == pytest.approx(summary["eval"]["accuracy"])
    with pytest.raises(Exception, match="trains no student"):
        run.evaluate(run.load("transfer/digits_study"), str(tmp_path / "job"))


def test_gan_resumes_through_the_shared_loop(tmp_path):
    def cfg(steps):
        c = run.load("datafree/digits_gan", [f"train.steps={steps}"])
        c.gan.update(nz=8, ngf=8, ndf=8)
        c.data.batch_size = 16
        c.train.update(progress=False, log_every=2, eval_every=0, checkpoint_every=2, mesh={"data": 1, "model": 1})
        return c

    whole = run.train(cfg(6), str(tmp_path / "whole"))
    run.train(cfg(4), str(tmp_path / "part"))
    assert Checkpointer(str(tmp_path / "part")).latest_step() == 4
    resumed = run.train(cfg(6), str(tmp_path / "part"), allow_changed=["train.steps"])  # extend the run
    assert resumed["eval"] == whole["eval"] and resumed["train"] == whole["train"]
    assert resumed["step_compilations"] == 1 and os.path.isfile(tmp_path / "part" / "samples_000006.png")
    g, info = load_model(str(tmp_path / "part"))
    assert info["arch"] == "dcgan_generator" and "generator" not in g
