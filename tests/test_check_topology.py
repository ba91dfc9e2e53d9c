"""``jka check --topology``: a run compiled for a TPU slice on this CPU (deviceless, through libtpu,
which the dev extra installs), its per-device cost, and the one-line refusals: a unit that does not
fit the slice's chips, a slice the compiler does not know, no TPU compiler installed."""
import json

import pytest
from jax.experimental import topologies

from jka import run
from jka.check import rehearse, topology
from jka.cli import main
from jka.errors import UserError
from tests.helpers import error_lines

pytest.importorskip("libtpu", reason="the TPU compiler (pip install 'jka[tpu]') is not installed")


def test_a_tiny_run_compiles_for_a_v5e_slice_and_costs_its_roofline(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["check", "digits/teacher", "train.steps=10", "--topology", "v5e:2x2", "--json", str(out)]) == 0
    text, r = capsys.readouterr().out, json.load(open(out))
    t = r["tpu"]
    assert t["topology"] == "v5e:2x2" and t["devices"] == t["chips"] == 4 and t["device"] == "TPU v5 lite"
    assert t["fits"] and 0 < t["memory_bytes"] < t["hbm_bytes"] == topology.CHIPS["TPU v5 lite"].hbm_bytes
    chip = topology.CHIPS["TPU v5 lite"]
    assert t["compute_s"] == pytest.approx(t["flops"] / chip.peak_flops)
    assert t["memory_s"] == pytest.approx(t["bytes_accessed"] / chip.hbm_bandwidth)
    assert t["roofline_s"] == max(t["compute_s"], t["memory_s"]) and t["run_s"] == pytest.approx(10 * t["roofline_s"])
    assert 0 < t["mfu_bound"] <= 1
    # XLA's FLOPs of one device's quarter of the batch, against jka's count of the whole step
    assert 0.5 < 4 * t["flops"] / r["flops_per_unit"] < 1.5
    assert "v5e:2x2 (4 × TPU v5 lite" in text and "roofline" in text


def test_a_v4_chip_shows_as_two_devices_sharing_its_figures():
    sl = topology.tpu_slice("v4:2x2x1")
    assert len(sl.devices) == 8 and sl.chips == 4
    assert sl.device.peak_flops == topology.CHIPS["TPU v4"].peak_flops / 2


def test_a_job_is_compiled_phase_by_phase():
    cfg = run.load("distill/digits_netgraft", ["netgraft.block_steps=2", "netgraft.chain_steps=3"])
    r = rehearse(cfg, topology_name="v5e:2x2")
    assert len(r["phases"]) == 9 and all(p["tpu"]["fits"] for p in r["phases"])
    assert r["tpu"]["run_s"] == pytest.approx(sum(p["tpu"]["run_s"] for p in r["phases"]))


@pytest.mark.parametrize("args, needle", [
    (["cifar/teacher", "model.name=small_cnn", "model.kwargs={'width': 32.0}", "data.batch_size=16384"],
     "does not fit the memory of a TPU v5 lite of v5e:2x2"),
    (["digits/teacher", "--topology", "v9:2x2"], "is not a TPU slice the TPU compiler knows"),
])
def test_what_cannot_be_compiled_for_a_slice_is_one_line(args, needle, capsys):
    args = args if "--topology" in args else [*args, "--topology", "v5e:2x2"]
    assert main(["check", *args]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and needle in err[0], err


def test_without_the_tpu_compiler_it_says_what_to_install(monkeypatch):
    def missing(**kwargs):
        raise RuntimeError("JAX TPU support not installed; cannot generate TPU topology.")

    monkeypatch.setattr(topologies, "get_topology_desc", missing)
    with pytest.raises(UserError, match=r"pip install 'jka\[tpu\]'"):
        topology.tpu_slice("v5e:2x2")
