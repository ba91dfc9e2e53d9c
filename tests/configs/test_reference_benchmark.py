"""The CIFAR-100 KD benchmark config holds its reference code's settings: every value in
jka/configs/distill/cifar100_benchmark_reference.toml (RepDistiller's train_student.py, its method
script, CRD's pairs, mdistiller's DKD and ReviewKD files, the logit-standardisation runs) equals the
built config's, for every pair x method; ReviewKD's default levels are the ones its reference builds for
each pair; and the step schedule drops the learning rate where the reference's epochs do."""
import jax
import jax.numpy as jnp
import pytest

from jka import errors, run
from jka.configs.distill import cifar100_benchmark as bench
from jka.methods.common import Net
from jka.methods.distill.reviewkd import level_shapes
from jka.methods.distill.zoo import select_stages
from jka.train.state import make_schedule
from tests.configs.reference import assert_every_row_cited, config_values, load_table, values

REF = load_table("distill", "cifar100_benchmark_reference.toml")


def test_every_row_has_a_value_and_a_source():
    assert sorted(REF["pair"]) == sorted(bench.PAIRS) and len(bench.PAIRS) == 13
    assert sorted(REF["method"]) == sorted(bench.METHODS)
    assert all(key.partition(":")[0] in bench.PAIRS and key.partition(":")[2] in bench.METHODS for key in REF["override"])
    assert set(REF["reviewkd_levels"]) <= set(bench.PAIRS)
    assert_every_row_cited({"harness": REF["harness"], **{f"{part} {name}": section
                                                          for part in ("pair", "method", "override", "reviewkd_levels")
                                                          for name, section in REF[part].items()}})


@pytest.mark.parametrize("pair", sorted(bench.PAIRS))
def test_every_pair_and_method_equals_the_reference(pair):
    for method in bench.METHODS:
        cfg = run.load(f"distill/cifar100_benchmark:pair={pair},method={method}")
        expected = values(REF["harness"], REF["pair"][pair], REF["method"][method],
                          REF["override"].get(f"{pair}:{method}", {}))
        assert config_values(cfg, expected) == expected, (pair, method)
        if f"{pair}:{method}" not in REF["override"] and method in bench.STAGE_KIND:
            assert cfg.distill.student_stages is None and cfg.distill.teacher_stages is None
        if method == "reviewkd":  # its levels: the default selection, checked below
            assert cfg.reviewkd.student_stages is None and cfg.reviewkd.teacher_stages is None


def _features(arch):
    net = Net.create(arch, 100, jnp.float32)
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    return jax.eval_shape(lambda x: net.module.init_with_output(jax.random.PRNGKey(0), x, train=False)[0][1], x)


@pytest.mark.parametrize("pair", sorted(REF["reviewkd_levels"]))
def test_reviewkd_default_levels_are_the_references(pair):
    """[size, channels] of the levels jka's ReviewKD fuses (student) and learns (teacher), shallow to deep,
    as build_review_kd sets them for the pair."""
    teacher, student = bench.PAIRS[pair]
    s_feats, t_feats = _features(student), _features(teacher)
    s_names, t_names = select_stages("stages", s_feats, t_feats)
    for who, feats, names in (("student", s_feats, s_names), ("teacher", t_feats, t_names)):
        got = [[h, c] for h, _, c in level_shapes(feats, names, pooled=True)]
        assert got == REF["reviewkd_levels"][pair][who]["value"], (pair, who)


def test_the_learning_rate_drops_after_epochs_150_180_210():
    cfg = run.load("distill/cifar100_benchmark:pair=resnet56_resnet20")
    sched = make_schedule(cfg.optim, cfg.train.steps)
    epoch = 782  # steps
    for first_step, lr in ((0, 0.05), (150 * epoch - 1, 0.05), (150 * epoch, 0.005), (180 * epoch - 1, 0.005),
                           (180 * epoch, 5e-4), (210 * epoch, 5e-5), (240 * epoch - 1, 5e-5)):
        assert float(sched(first_step)) == pytest.approx(lr, rel=1e-6), first_step
    slow = run.load("distill/cifar100_benchmark:pair=wrn40_2_shufflev1")
    assert float(make_schedule(slow.optim, slow.train.steps)(0)) == pytest.approx(0.01)


def test_unknown_pair_or_method_is_one_line():
    for spec in ("pair=resnet56_resnet8", "method=crd_nope"):
        with pytest.raises(errors.ConfigError) as info:
            run.load(f"distill/cifar100_benchmark:{spec}")
        assert "\n" not in str(info.value) and spec.split("=")[1] in str(info.value)
