"""DKD and the logit-standardisation variant of the digits distillation config (docs/methods.md, "DKD",
"Logit standardisation"): the paper's defaults, the digits variants, the one-line refusals. The
objectives are checked against NumPy in tests/objectives/test_dkd.py; the steps of the digits variants are
traced by tests/test_rehearsal.py."""
import pytest

from jka import methods, run
from jka.errors import ConfigError
from jka.methods import kd
from jka.methods.distill import dist, dkd, zoo


def test_dkd_has_the_papers_defaults_and_a_digits_variant():
    assert dkd.Settings() == dkd.Settings(alpha=1.0, beta=8.0, T=4.0, ce=1.0, warmup_epochs=20.0, logit_std=False)
    cfg = run.load("distill/digits:method=dkd")
    assert cfg.algorithm == "dkd" and len(cfg.teachers) == 1
    assert methods.get("dkd").read(cfg) == dkd.Settings(warmup_epochs=2.0)


def test_kd_ls_variant_is_the_reference_kd_with_logit_standardisation():
    """KD+LS of the reference scripts: base temperature 2, KD weight 9, CE 1."""
    cfg = run.load("distill/digits:method=kd_ls")
    s = methods.get("distill").read(cfg)
    assert (s.method, s.T, s.logit_std) == ("kd", 2.0, True) and zoo.weights(s) == (9.0, 1.0, 0.0)


def test_logit_std_is_off_by_default_everywhere():
    assert not any(cls().logit_std for cls in (kd.Settings, zoo.Settings, dist.Settings, dkd.Settings))


@pytest.mark.parametrize("overrides,message", [
    (["dkd.warmup_epochs=-1"], "dkd.warmup_epochs=-1.0 is not valid"),
    (["dkd.logit_std=yes"], "dkd.logit_std='yes' has type str"),
    (["teachers=[]"], "dkd needs exactly 1 entry in teachers (got 0)"),
])
def test_bad_values_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as error:
        run.validate(run.load("distill/digits:method=dkd", overrides))
    assert message in str(error.value) and "\n" not in str(error.value)
