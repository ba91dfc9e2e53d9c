"""The study's linear probe (standardise + L2 logistic regression, optax L-BFGS) minimises
scikit-learn's LogisticRegression objective C·Σ logloss + ½‖W‖²: checked by its optimality
conditions (no scikit-learn needed) and against scikit-learn itself when it is installed."""
import numpy as np
import pytest

from jka.transfer.study import fit_linear_probe, linear_probe_accuracy, probe_predict


def _blobs(n, d, k, spread, seed):
    rng = np.random.default_rng(seed)
    centers = 3.0 * rng.normal(size=(k, d))
    y = rng.integers(0, k, n)
    return (centers[y] + spread * rng.normal(size=(n, d))).astype(np.float32), y


def _objective_gradient(probe, x, y, C):
    """Gradient of C·Σ logloss + ½‖W‖² at the probe's parameters (numpy, float64), in the
    probe's parametrisation (two classes: one weight vector, class 0's logit fixed at 0)."""
    z = (x - probe["mean"]) / probe["scale"]
    logits = z @ probe["coef"] + probe["intercept"]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    r = p - np.eye(len(probe["classes"]))[np.searchsorted(probe["classes"], y)]
    g_w, g_b = C * z.T @ r + probe["coef"], C * r.sum(0)
    if len(probe["classes"]) == 2:
        g_w, g_b = g_w[:, 1:], g_b[1:]
    return g_w, g_b


@pytest.mark.parametrize("k", [2, 3, 10])
def test_probe_meets_the_optimality_conditions(k):
    x, y = _blobs(120, 20, k, spread=2.0, seed=k)
    probe = fit_linear_probe(x, y, C=1.0)
    g_w, g_b = _objective_gradient(probe, x, y, 1.0)
    # relative to the gradient at zero (C·Σ logloss starts at ~C·N·log k of slope)
    g0 = np.abs(_objective_gradient(dict(probe, coef=0 * probe["coef"], intercept=0 * probe["intercept"]),
                                    x, y, 1.0)[0]).max()
    assert np.abs(g_w).max() < 1e-3 * g0 and np.abs(g_b).max() < 1e-3 * g0
    if k == 2:
        np.testing.assert_array_equal(probe["coef"][:, 0], 0.0)  # one weight vector, as scikit-learn


def test_probe_is_deterministic_and_separates_a_separable_problem():
    x, y = _blobs(300, 5, 4, spread=0.3, seed=1)
    a = fit_linear_probe(x[:150], y[:150])
    b = fit_linear_probe(x[:150], y[:150])
    np.testing.assert_array_equal(a["coef"], b["coef"])
    np.testing.assert_array_equal(a["intercept"], b["intercept"])
    assert np.mean(probe_predict(a, x[150:]) == y[150:]) == 1.0
    # labels that are not 0..k-1 come back as given
    assert set(probe_predict(fit_linear_probe(x[:150], 10 * y[:150] + 3), x[150:])) <= {3, 13, 23, 33}


@pytest.mark.parametrize("n,d,k", [(100, 32, 10), (100, 64, 2), (100, 300, 3), (60, 8, 5)])
def test_probe_agrees_with_sklearn(n, d, k):
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = _blobs(n + 400, d, k, spread=4.0, seed=n + d + k)  # overlapping classes: not separable
    tr, te = slice(0, n), slice(n, None)
    scaler = StandardScaler().fit(x[tr])
    clf = LogisticRegression(C=1.0, max_iter=20000, tol=1e-10).fit(scaler.transform(x[tr]), y[tr])
    probe = fit_linear_probe(x[tr], y[tr], C=1.0)
    ours, theirs = probe_predict(probe, x[te]), clf.predict(scaler.transform(x[te]))
    assert np.mean(ours == theirs) >= 0.98
    np.testing.assert_allclose(probe_predict(probe, x[te], proba=True),
                               clf.predict_proba(scaler.transform(x[te])), atol=5e-3)
    # the study's accuracy, with the study's own call (scikit-learn's default tolerance then)
    ref = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(x[tr]), y[tr])
    ours_acc = linear_probe_accuracy(x[:n], y[:n], x[te], y[te], budget=n, repeats=1)
    assert abs(ours_acc - ref.score(scaler.transform(x[te]), y[te])) <= 0.02
