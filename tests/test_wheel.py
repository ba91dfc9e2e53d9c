"""jka as a user gets it from an index: a wheel built from this checkout (``python -m build``) and
installed in a fresh virtual environment, run from a directory outside the checkout, lists its
shipped configs and trains one by name (``jka train digits/kd``): the configs travel inside the
package. The fresh environment installs the wheel alone (``--no-deps``) and borrows the test
environment's installed dependencies through a ``.pth`` file, so no index is needed. The wheel's metadata is what an index checks on upload (``twine check --strict``:
the README renders, the SPDX licence and its file are declared)."""
import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile

import pytest

from tests.conftest import REPO


def _run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    pytest.importorskip("build")
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp / "dist"), REPO])
    (wheel,) = [p for p in os.listdir(tmp / "dist") if p.endswith(".whl")]
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    with open(os.path.join(site, "borrowed_deps.pth"), "w") as f:  # this environment's dependencies
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    # no PYTHONPATH: a checkout on it holds jka.egg-info (written by the build), which pip takes for jka installed
    _run([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(tmp / "dist" / wheel)],
         env={**os.environ, "PYTHONPATH": ""})
    home = tmp / "elsewhere"
    home.mkdir()
    return str(env_dir / "bin"), home, str(tmp / "dist" / wheel)


def test_the_wheel_metadata_passes_twine_check_and_carries_the_licence(installed):
    pytest.importorskip("twine", reason="twine checks the metadata (the dev extra)")
    _, _, wheel = installed
    out = _run([sys.executable, "-m", "twine", "check", "--strict", wheel]).stdout
    assert "PASSED" in out, out
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in meta and "License-File: LICENSE" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names) and "jka/py.typed" in names
    assert "tensorflow-datasets" not in [r.split(">")[0] for r in _requires(meta, extra=None)]
    assert any(r.startswith("tensorflow-datasets") for r in _requires(meta, extra="tfds"))
    # README links point at the repository, so they work on the index's page too
    assert "](docs/" not in meta and "](https://github.com/jka-dev/jka/blob/main/docs/methods.md)" in meta


def _requires(meta: str, extra):
    """The Requires-Dist lines of ``meta`` for ``extra`` (None: the core dependencies)."""
    rows = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    if extra is None:
        return [r for r in rows if "extra ==" not in r]
    return [r.split(";")[0].strip() for r in rows if f'extra == "{extra}"' in r]


def test_the_installed_wheel_lists_its_configs_and_trains_one_by_name(installed):
    bin_dir, home, _ = installed
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "PYTHONPATH": ""}
    where = _run([f"{bin_dir}/python", "-c", "import jka; print(jka.__file__)"], cwd=home, env=env).stdout
    assert not where.startswith(REPO) and "site-packages" in where  # the wheel's copy, not the checkout
    listed = _run([f"{bin_dir}/jka", "configs"], cwd=home, env=env).stdout
    for name in ("digits/kd", "digits/teacher", "distill/digits", "datafree/cifar10", "amalgamation/digits"):
        assert name in listed
    tiny = ["train.steps=3", "train.progress=False", "train.mesh.data=1", "data.batch_size=16",
            *(f"teachers.{i}.config.train.{k}" for i in (0, 1) for k in ("steps=3", "mesh.data=1")),
            "--workdir", "run"]
    _run([f"{bin_dir}/jka", "train", "digits/kd", *tiny], cwd=home, env=env)
    summary = json.load(open(home / "run" / "summary.json"))
    assert summary["step"] == 3 and summary["algorithm"] == "kd" and 0.0 <= summary["eval"]["accuracy"] <= 1.0
