"""matplotlib is the ``plots`` extra: without it a picture ends with one line saying how to get it."""
import sys

import numpy as np
import pytest

from jka.errors import UserError
from jka.transfer import plots


def test_pictures_without_matplotlib_say_how_to_install_it(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    with pytest.raises(UserError, match=r"^pictures need matplotlib: pip install 'jka\[plots\]'$"):
        plots.heatmap(np.eye(2), ["a", "b"], str(tmp_path / "h.png"), "title")
    assert not (tmp_path / "h.png").exists()


def test_jka_transfer_without_matplotlib_stops_before_any_work(tmp_path, monkeypatch, capsys):
    from jka.cli import main

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "out"
    assert main(["transfer", "--zoo", str(tmp_path / "no_zoo"), "--probe", "digits", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "jka: error: pictures need matplotlib: pip install 'jka[plots]'"
    assert not out.exists()
