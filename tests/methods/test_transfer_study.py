"""The transfer study job: its section checked before any network trains, its zoo trained through
the job's phases (and not again), the study's summary."""
import json
import os

import pytest

from jka import run
from jka.configs.transfer.digits_study import relabel_config
from jka.errors import ConfigError

TARGETS = ["cnn_digit", "cnn_parity", "cnn_ge5", "cnn_mod3", "cnn_loops", "cnn_random_partition"]


def test_the_digits_study_config():
    cfg = run.load("transfer/digits_study")
    assert run.validate(cfg).name == "transfer_study" and not run.validate(cfg).trains_student
    s = cfg.transfer_study
    assert [z["name"] for z in s.zoo] == [f"cnn_{t}" for t in ("digit", "parity", "ge5", "mod3", "loops",
                                                                  "random_partition", "random_labels")] + \
        ["wrn_digit", "wrn_parity", "wrn_mod3"]
    assert list(s.targets) == TARGETS and s.probe_size == 200 and s.layer == "logits" and s.budget == 100
    assert s.zoo[0]["config"]["model"]["kwargs"].to_dict() == {"width": 0.5}
    assert s.zoo[0]["config"]["train"]["steps"] == 300
    assert s.zoo[-1]["config"]["model"]["name"] == "wrn16_1" and s.zoo[-1]["config"]["train"]["steps"] == 200
    assert "zoo" not in cfg and "transfer" not in cfg  # the old top-level keys are gone
    assert [spec["workdir"] for spec in run.networks(cfg)] == [z["workdir"] for z in s.zoo]


@pytest.mark.parametrize("change, needle", [
    (lambda s: s.update(no_such_key=1), "transfer_study.no_such_key is not a setting"),
    (lambda s: s.update(budget="many"), "transfer_study.budget='many' is not valid"),
    (lambda s: s.update(attribution="gradcam"), "transfer_study.attribution='gradcam'.*valid choices"),
    (lambda s: s.update(targets=["cnn_colour"]), r"transfer_study.targets \['cnn_colour'\] are not zoo names"),
    (lambda s: s.update(zoo=s["zoo"][:1]), "transfer_study.zoo needs at least two networks"),
    (lambda s: s["zoo"][1].update(name="cnn_digit"), "transfer_study.zoo names must be unique"),
    (lambda s: s["zoo"][2].update(task="colour"), r"transfer_study.zoo\[2\].task='colour' is not valid"),
    (lambda s: s["zoo"][3].update(colour=1), r"transfer_study.zoo\[3\].colour is not a key of a network entry"),
])
def test_bad_settings_are_refused_before_any_network_trains(change, needle):
    cfg = run.load("transfer/digits_study")
    section = cfg.transfer_study.to_dict()  # changed as a config file writes it (no ConfigDict type check)
    change(section)
    cfg.transfer_study = section
    with pytest.raises(ConfigError, match=needle):
        run.validate(cfg)


def test_no_teachers():
    cfg = run.load("transfer/digits_study")
    cfg.teachers = [dict(workdir="t")]
    with pytest.raises(ConfigError, match="transfer_study compares the networks of its zoo; remove the teachers"):
        run.validate(cfg)


@pytest.mark.slow
def test_a_tiny_study_trains_its_zoo_once_and_writes_the_study(tmp_path):
    cfg = run.load("transfer/digits_study")
    zoo = [dict(name=f"cnn_{lab}", workdir=f"zoo/cnn_{lab}", task=lab,
                config=relabel_config(lab, "small_cnn", 8, {"width": 0.25})) for lab in ("digit", "parity", "mod3")]
    cfg.transfer_study.update(zoo=zoo, targets=["cnn_digit", "cnn_parity"], probe_size=16, budget=30, repeats=1,
                              layer_repeats=1, permutations=20)
    summary = run.train(cfg, str(tmp_path))
    assert summary["algorithm"] == "transfer_study" and set(summary["zoo"]) == {z["name"] for z in zoo}
    assert -1.0 <= summary["eval"]["spearman_depara_mean"] <= 1.0
    assert set(summary["eval"]["spearman_attribution"]) == {"cnn_digit", "cnn_parity"}
    assert json.load(open(tmp_path / "summary.json"))["eval"] == json.loads(json.dumps(summary["eval"]))
    for name in ("study.json", "depara_heatmap.png", "attribution_graph.png", "depara_vs_transfer.png"):
        assert (tmp_path / name).exists(), name
    stamp = os.path.getmtime(tmp_path / "zoo" / "cnn_digit" / "summary.json")
    run.train(cfg, str(tmp_path))  # the zoo holds its models: nothing trains again
    assert os.path.getmtime(tmp_path / "zoo" / "cnn_digit" / "summary.json") == stamp
    with pytest.raises(Exception, match="trains no student"):
        run.evaluate(cfg, str(tmp_path))
