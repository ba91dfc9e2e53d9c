"""Attribution maps against a hand computation and finite differences on a tiny linear model."""
import numpy as np
import pytest

from jka.errors import ConfigError
from jka.transfer.attribution import attribution_maps, feature_vectors
from tests.transfer.tiny import probe_images, tiny_linear_model


def _hand(model, x):
    """g(x) = ‖W((x − m)/s) + b‖ ⇒ ∂g/∂x = Wᵀ f / (s ‖f‖), computed in NumPy."""
    w = np.asarray(model.variables["params"]["linear"]["kernel"], np.float64)  # (D, K)
    b = np.asarray(model.variables["params"]["linear"]["bias"], np.float64)
    m, s = model.mean[0], model.std[0]
    out = []
    for img in x.astype(np.float64):
        f = ((img - m) / s).reshape(-1) @ w + b
        out.append((w @ f / (s * np.linalg.norm(f))).reshape(img.shape))
    return np.stack(out)


@pytest.mark.parametrize("mean,std", [((0.0,), (1.0,)), ((0.3,), (0.5,))])
def test_gradient_x_input_and_saliency_match_hand_computation(mean, std):
    model = tiny_linear_model(mean=mean, std=std)
    x = probe_images(5)
    grad = _hand(model, x)
    gi = attribution_maps(model, x, layer="logits", method="grad_input")
    sal = attribution_maps(model, x, layer="logits", method="saliency")
    assert gi.shape == sal.shape == (5, 4, 4)
    np.testing.assert_allclose(gi, (x * grad).mean(-1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sal, np.abs(grad).mean(-1), rtol=1e-4, atol=1e-6)


def test_gradient_matches_finite_differences_on_a_feature_map():
    model = tiny_linear_model(seed=3)
    x = probe_images(2, seed=1)
    w = np.asarray(model.variables["params"]["linear"]["kernel"], np.float64)
    b = np.asarray(model.variables["params"]["linear"]["bias"], np.float64)

    def g(img):
        return np.linalg.norm(img.reshape(-1) @ w + b)

    h = 1e-5
    for i, img in enumerate(x.astype(np.float64)):
        fd = np.zeros_like(img)
        for idx in np.ndindex(img.shape):
            e = np.zeros_like(img)
            e[idx] = h
            fd[idx] = (g(img + e) - g(img - e)) / (2 * h)
        got = attribution_maps(model, x[i:i + 1], layer="pooled", method="grad_input")[0]
        np.testing.assert_allclose(got, (img * fd).mean(-1), rtol=1e-3, atol=1e-5)
    # The 'flat' feature is the input itself: g = ‖x‖, ∂g/∂x = x/‖x‖.
    flat = attribution_maps(model, x, layer="flat", method="saliency")
    expect = np.abs(x / np.linalg.norm(x.reshape(2, -1), axis=1)[:, None, None, None]).mean(-1)
    np.testing.assert_allclose(flat, expect, rtol=1e-4, atol=1e-6)


def test_batching_and_padding_do_not_change_maps():
    model = tiny_linear_model()
    x = probe_images(7)
    full = attribution_maps(model, x, layer="logits", batch_size=64)
    chunks = attribution_maps(model, x, layer="logits", batch_size=3)  # 3 chunks, last one padded
    np.testing.assert_allclose(full, chunks, rtol=1e-6, atol=1e-7)
    assert feature_vectors(model, x, "flat").shape == (7, 32)


def test_unknown_layer_and_method_are_user_errors():
    model = tiny_linear_model()
    with pytest.raises(ConfigError, match="no feature"):
        attribution_maps(model, probe_images(2), layer="block9")
    with pytest.raises(ConfigError, match="attribution method"):
        attribution_maps(model, probe_images(2), method="lrp")
