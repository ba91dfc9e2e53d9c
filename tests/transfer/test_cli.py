"""`jka transfer` on a tiny zoo writes JSON, a heat map and a graph picture, and prints rankings."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jka import models
from jka.errors import UserError
from jka.train.export import export_model
from jka.cli import COMMANDS
from jka.parser import build_parser


def _export_tiny_zoo(root):
    # m0 and m2 share an architecture (and so one compiled function), m1 is wider.
    for i, (n_out, kw) in enumerate([(2, {"width": 0.125}), (3, {"width": 0.25}), (2, {"width": 0.125})]):
        arch = "small_cnn"
        module = models.create(arch, n_out, **kw)
        variables = module.init(jax.random.PRNGKey(i), jnp.zeros((1, 8, 8, 1)))
        variables = {k: variables[k] for k in ("params", "batch_stats")}  # drop sown bn_stats
        export_model(os.path.join(root, f"m{i}", "model"), arch, n_out, variables, mean=[0.3], std=[0.4],
                     image_shape=[8, 8, 1], kwargs=kw)


def _parse(argv):
    return build_parser().parse_args(argv)


@pytest.mark.parametrize("method", ["depara", "attribution"])
def test_cli_writes_json_and_two_pictures(tmp_path, capsys, method):
    import matplotlib.image as mpimg

    zoo, out = tmp_path / "zoo", tmp_path / "out"
    _export_tiny_zoo(str(zoo))
    probe = tmp_path / "probe.npy"
    np.save(probe, (np.random.default_rng(0).uniform(0, 255, (12, 8, 8))).astype(np.uint8))
    args = _parse(["transfer", "--zoo", str(zoo), "--probe", str(probe), "--method", method, "--out", str(out)])
    COMMANDS[args.command](args)
    data = json.loads((out / "transfer.json").read_text())
    assert data["names"] == ["m0", "m1", "m2"]
    m = np.asarray(data["matrix"])
    assert m.shape == (3, 3) and np.allclose(m, m.T)
    assert set(data["rankings"]) == {"m0", "m1", "m2"} and len(data["rankings"]["m0"]) == 2
    for name in ("heatmap.png", "graph.png"):
        path = out / name
        assert path.stat().st_size > 1000
        img = mpimg.imread(str(path))
        assert img.ndim == 3 and img.shape[0] > 100 and img[..., :3].std() > 0.01  # a real picture
    printed = capsys.readouterr().out
    assert "m0" in printed and "best sources" in printed


def test_cli_user_errors(tmp_path):
    args = _parse(["transfer", "--zoo", str(tmp_path / "none"), "--probe", "digits", "--out", str(tmp_path)])
    # not a directory: read as a config (a path or a shipped name) whose transfer_study.zoo is the zoo
    with pytest.raises(UserError, match="is neither a file nor a config shipped with jka"):
        COMMANDS[args.command](args)
    _export_tiny_zoo(str(tmp_path / "zoo"))
    args = _parse(["transfer", "--zoo", str(tmp_path / "zoo"), "--probe", "cifar", "--out", str(tmp_path)])
    with pytest.raises(UserError, match="probe"):
        COMMANDS[args.command](args)
