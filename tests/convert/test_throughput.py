"""The benchmark harness runs jka's real step and PyTorch's on tiny settings and writes its JSON."""
import json
import math
import os
import sys

import pytest

pytest.importorskip("torch")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import throughput  # noqa: E402

TOP_LEVEL = {"device", "task", "batch", "jax_version", "config", "jax", "torch", "torch_compile",
             "speedup_vs_torch_eager", "speedup_vs_torch_compile"}
PER_FRAMEWORK = {"img_per_s", "ms_per_step", "chained_ms_per_step", "compile_s", "warmup_s", "peak_mem_bytes",
                 "flops_per_step", "tflops"}


def test_harness_writes_both_frameworks(tmp_path, capsys, monkeypatch):
    task = "kd"
    out = tmp_path / "result.json"
    saved, write = [], throughput.write_json
    monkeypatch.setattr(throughput, "write_json", lambda r, path: saved.append(json.loads(json.dumps(r))) or write(r, path))
    code = throughput.main(["--task", task, "--teacher", "small_cnn", "--student", "small_cnn", "--batch", "8",
                            "--steps", "2", "--warmup", "1", "--image-size", "8", "--num-classes", "10",
                            "--framework", "both", "--torch-compile", "off", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "speedup_vs_torch_eager" in printed and f"wrote {out}" in printed
    # each side is written as soon as it is measured: a run cut by its time limit keeps what it finished
    assert saved[0]["jax"]["img_per_s"] > 0 and saved[0]["torch"] is None
    result = json.loads(out.read_text())
    assert TOP_LEVEL <= set(result)
    assert result["task"] == task and result["batch"] == 8 and result["config"]["student"] == "small_cnn"
    for name in ("jax", "torch"):
        r = result[name]
        assert PER_FRAMEWORK <= set(r), name
        assert r["img_per_s"] > 0 and r["ms_per_step"] > 0 and r["timed_steps"] == 2
        assert abs(r["img_per_s"] * r["ms_per_step"] / 1e3 - 8) < 1e-6  # img/s = batch / median step time
        assert r["flops_per_step"] > 0 and r["tflops"] > 0
    # the same work is counted once (XLA's cost analysis) for both frameworks
    assert result["torch"]["flops_per_step"] == result["jax"]["flops_per_step"]
    assert result["speedup_vs_torch_eager"] == pytest.approx(result["jax"]["img_per_s"] / result["torch"]["img_per_s"])
    assert "skipped" in result["torch_compile"] and result["speedup_vs_torch_compile"] is None
    assert math.isfinite(result["jax"]["final_loss"]) and math.isfinite(result["torch"]["final_loss"])
    if throughput.has_accelerator():
        assert result["jax"]["peak_mem_bytes"] > 0
    else:
        assert result["torch"]["peak_mem_bytes"] is None



def test_results_are_recorded_only_on_an_accelerator():
    args = throughput.build_parser().parse_args(["--batch", "256"])
    args.dtype = "bfloat16"
    path = throughput.default_json_path(args)
    if throughput.has_accelerator():
        assert path.startswith(throughput.RESULTS_DIR) and "kd_cifar_resnet34-cifar_resnet18_b256" in path
    else:
        assert path is None


def test_cpu_side_by_side_interleaves_processes_and_summarises_both_timings(tmp_path, capsys):
    from benchmarks import cpu_side_by_side

    out = tmp_path / "sbs.json"
    assert cpu_side_by_side.main(["--teacher", "small_cnn", "--student", "small_cnn", "--num-classes", "10",
                                  "--image-size", "8", "--batch", "4", "--steps", "2", "--warmup", "1",
                                  "--repeats", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["framework"] for r in result["rows"]] == ["jax", "torch"]
    for key in ("ms_per_step", "chained_ms_per_step"):
        s = result["summary"][key]
        assert s["jka_speedup"] == pytest.approx(s["torch_ms"] / s["jax_ms"])
    assert result["rows"][1]["torch_threads"] >= 1 and len(result["rows"][0]["load_before"]) == 3


def test_tuned_pytorch_rows_fold_the_teacher_and_write_their_speedups(tmp_path):
    """--torch-tuned adds the strongest PyTorch (the teacher's BatchNorms folded by torch.fx, kept
    in bf16 when asked) and its speedup fields; the folded teacher computes the same logits."""
    torch = pytest.importorskip("torch")
    from benchmarks.torch_steps import folded
    from jka.convert.torch_models import torch_create

    teacher = torch_create("cifar_resnet18", 10).eval()
    for m in teacher.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(folded(teacher)(x)[0], teacher(x)[0], rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded(teacher).modules())

    out = tmp_path / "tuned.json"
    assert throughput.main(["--task", "kd", "--teacher", "small_cnn", "--student", "small_cnn", "--batch", "8",
                            "--steps", "2", "--warmup", "1", "--image-size", "8", "--num-classes", "10",
                            "--dtype", "bfloat16", "--framework", "both", "--torch-compile", "off",
                            "--torch-tuned", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert PER_FRAMEWORK <= set(result["torch_tuned"])
    assert result["speedup_vs_torch_tuned_eager"] == pytest.approx(
        result["jax"]["img_per_s"] / result["torch_tuned"]["img_per_s"])
    assert "skipped" in result["torch_tuned_compile"] and result["speedup_vs_torch_tuned_compile"] is None
    assert "mfu" in result and math.isfinite(result["torch_tuned"]["final_loss"])

    out = tmp_path / "tuned_only.json"  # --tuned-only: the plain PyTorch rows left out (gpu_suite's strong group)
    assert throughput.main(["--task", "kd", "--teacher", "small_cnn", "--student", "small_cnn", "--batch", "8",
                            "--steps", "1", "--warmup", "1", "--image-size", "8", "--num-classes", "10",
                            "--framework", "torch", "--torch-compile", "off", "--torch-tuned", "--tuned-only",
                            "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "skipped" in result["torch"] and result["torch_tuned"]["flops_per_step"] > 0
    assert throughput.main(["--framework", "torch", "--tuned-only"]) == 2  # --tuned-only needs --torch-tuned
