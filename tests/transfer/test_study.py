"""Study pieces: relabelings, the permutation test, the linear-probe transfer value."""
import numpy as np
import pytest

from jka.data.relabel import relabel
from jka.errors import ConfigError
from jka.transfer.study import correlation_test, linear_probe_accuracy


def test_relabelings():
    d = np.arange(10)
    assert relabel("parity", d)[0].tolist() == [0, 1] * 5
    assert relabel("ge5", d)[0].tolist() == [0] * 5 + [1] * 5
    assert relabel("mod3", d) [0].tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    assert relabel("loops", d)[0].tolist() == [1, 0, 0, 0, 0, 0, 1, 0, 1, 1]
    part, k = relabel("random_partition", d)
    assert k == 3 and sorted(np.bincount(part).tolist()) == [3, 3, 4]
    noise, k = relabel("random_labels", np.zeros(1000, int))
    assert k == 5 and len(np.unique(noise)) == 5  # labels that do not depend on the image
    with pytest.raises(ConfigError, match="labeling"):
        relabel("colour", d)


def test_permutation_test_exact_small_case():
    values = {"t": dict(zip("abcde", [0.1, 0.2, 0.3, 0.4, 0.5]))}
    res = correlation_test({"t": dict(zip("abcde", [1, 2, 3, 4, 5]))}, values, 4000)
    assert res["mean"] == pytest.approx(1.0)
    assert res["p_value"] == pytest.approx(1 / 120, abs=0.006)  # one ordering in 5! is as good
    res = correlation_test({"t": dict(zip("abcde", [5, 4, 3, 2, 1]))}, values, 500)
    assert res["mean"] == pytest.approx(-1.0) and res["p_value"] == 1.0


def test_linear_probe_separates_informative_from_noise_features():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = y[:, None] + 0.3 * rng.normal(size=(400, 4))
    noise = rng.normal(size=(400, 4))
    acc_good = linear_probe_accuracy(good[:300], y[:300], good[300:], y[300:], budget=40, repeats=3)
    acc_noise = linear_probe_accuracy(noise[:300], y[:300], noise[300:], y[300:], budget=40, repeats=3)
    assert acc_good > 0.95 and acc_noise < 0.7
