"""The PyTorch side of the data-free benchmark: its augmented views are the geometry jka uses."""
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks.datafree_torch import TorchCMI  # noqa: E402


class Views:
    """TorchCMI's view methods without building its models."""
    torch = torch
    global_view, local_view = TorchCMI.global_view, TorchCMI.local_view

    def __init__(self, flip):
        self.flip = (lambda x: x) if not flip else (lambda x: TorchCMI.flip(self, x))


def test_global_view_is_a_window_of_the_padded_image():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8)
    out = Views(flip=False).global_view(x, pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):
        windows = [padded[i, :, a:a + 8, b:b + 8] for a in range(5) for b in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_local_view_of_the_whole_image_is_the_image():
    x = torch.rand(4, 3, 8, 8)
    out = Views(flip=False).local_view(x, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    np.testing.assert_allclose(out.numpy(), x.numpy(), atol=1e-5)


def test_flip_mirrors_about_half_the_batch():
    torch.manual_seed(1)
    x = torch.rand(400, 1, 2, 2)
    out = TorchCMI.flip(Views(False), x)
    mirrored = [torch.equal(o, xi.flip(2)) and not torch.equal(o, xi) for o, xi in zip(out, x)]
    assert 150 < sum(mirrored) < 250
