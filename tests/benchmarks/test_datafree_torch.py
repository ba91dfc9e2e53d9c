"""The PyTorch sides of the data-free benchmark: they run end to end and write their rows, their formulas
are jka's on the same inputs, their augmented views are the geometry jka uses."""
import argparse
import dataclasses
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import datafree_torch, families  # noqa: E402
from benchmarks import torch_datafree as td  # noqa: E402
from jka import losses, models  # noqa: E402
from jka.convert.load import convert_state_dict  # noqa: E402
from jka.convert.torch_models import torch_create  # noqa: E402
from jka.losses import priors  # noqa: E402
from jka.methods.datafree import cmi, deepinversion, dfq, generator  # noqa: E402
from jka.methods.datafree.synthesis import teacher_inversion_forward  # noqa: E402
from jka.train.teachers import Teacher  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread is faster than several and does not spin against other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(task, monkeypatch, **overrides):
    """The task's family with resnet8 teacher and student (tiny) and ``overrides`` on its config."""
    path, _, classes, suite = families.SUITE[families.DATAFREE[task]]
    monkeypatch.setitem(families.SUITE, families.DATAFREE[task],
                        (path, ["resnet8"], classes, {**suite, "model.name": "resnet8", **overrides}))


def jka_twin(net):
    """jka's resnet8 with the weights of the PyTorch ``net``: (module, variables)."""
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    return models.create("resnet8", 10), convert_state_dict(state, "resnet8", 10)


@pytest.mark.parametrize("task, unit", [("dfq", "1 generator step(s) + 10 student steps"),
                                        ("deepinversion", "2 synthesis iterations + 2 student steps"),
                                        ("cmi", "2 synthesis iterations + 2 student steps")])
def test_each_pytorch_side_runs_its_configs_unit_and_writes_its_row(task, unit, tmp_path, monkeypatch):
    """The shipped config's unit, tiny: resnet8s, 8×8 images, batch 4, CMI's bank and negatives cut down."""
    tiny(task, monkeypatch, **({"cmi.bank_size": 64, "cmi.negatives": 16} if task == "cmi" else {}))
    out = tmp_path / "row.json"
    assert datafree_torch.main(["--only", task, "--framework", "torch", "--batch", "4", "--image-size", "8",
                                "--iterations", "2", "--steps", "1", "--warmup", "1", "--torch-tuned",
                                "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["iterations_override"] == 2
    for side in ("torch", "torch_tuned"):  # the tuned side: the teacher folded, its BN prior kept
        row = result["families"][task][side]
        assert unit in row["unit"] and ("folded" in row["teacher"]) == (side == "torch_tuned")
        assert row["ms_per_step"] > 0 and row["chained_ms_per_step"] > 0 and row["torch_threads"] == 1
        assert np.isfinite(row["final_loss"]) and row["img_per_s"] == pytest.approx(4e3 / row["ms_per_step"])


@pytest.mark.parametrize("task", ["dfq", "deepinversion"])
def test_synthesis_objective_is_jkas_on_the_same_models_and_inputs(task, monkeypatch):
    """DFQ's generator loss and DeepInversion's pixel loss, every term and the weighted sum, of the PyTorch
    side against jka's own function with the config's weights, on the same weights and images. The weights
    are set so that every term moves the sum (and so that a side with the defaults hard-coded fails)."""
    weights = ({"dfq.adv": 10.0, "dfq.bn": 0.1, "dfq.oh": 2.0, "dfq.bal": 3.0} if task == "dfq" else
               {"deepinversion.bn": 1e-3, "deepinversion.oh": 2.0, "deepinversion.adv": 1e4, "deepinversion.tv": 1.0})
    tiny(task, monkeypatch, **weights)
    args = argparse.Namespace(batch=4, image_size=8, iterations=2, dtype="float32")
    torch.manual_seed(0)
    side = td.SIDES[task](args, torch.device("cpu"), False)
    (t_mod, t_vars), (s_mod, s_vars) = jka_twin(side.teacher), jka_twin(side.student)
    teacher = Teacher("resnet8", t_mod, t_vars, list(range(10)), {})
    v = np.random.default_rng(5).normal(size=(4, 8, 8, 3)).astype(np.float32)
    vt = torch.tensor(v).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    if task == "dfq":  # the student in training mode (batch statistics), as in jka's generator step
        got = side.objective(vt)
        logits = s_mod.apply(s_vars, jnp.asarray(v), train=True, mutable=["batch_stats"])[0][0]
        t, pooled, r_bn = generator.teacher_outputs([teacher], [t_vars], jnp.asarray(v), with_bn=True)
        want = dfq.generator_loss(side.s, t, pooled, r_bn, logits)
    else:  # the student fixed, in inference mode; no jitter (jka's rng and the host's draw differ), so x = v
        side.fix_student()
        y = torch.tensor([3, 1, 4, 1])
        got = side.objective(vt, vt, y)
        student = lambda x: s_mod.apply(s_vars, x, train=False)[0]  # noqa: E731
        s = dataclasses.replace(side.s, jitter=0, flip=False)
        want = deepinversion.synthesis_loss(s, teacher, t_vars, student, jnp.asarray(v), jnp.asarray(y.numpy()),
                                            jax.random.PRNGKey(0), jnp.float32)
    assert set(got[1]) == set(want[1])
    for k, value in want[1].items():
        np.testing.assert_allclose(float(got[1][k].detach()), float(value), rtol=1e-3, atol=1e-7, err_msg=k)
    np.testing.assert_allclose(float(got[0].detach()), float(want[0]), rtol=1e-4)


def test_teacher_bn_prior_and_cmi_features_match_jka():
    """R_bn, the BN inputs' per-sample means (in call order) and the stage means of the PyTorch twin
    (hooks) equal jka's on the same weights and inputs."""
    torch.manual_seed(0)
    twin = torch_create("resnet8", 10).eval()
    for m in twin.modules():  # running statistics away from the batch's
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    module, variables = jka_twin(twin)
    teacher = Teacher("resnet8", module, variables, list(range(10)), {})
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 8, 8, 3))
    logits, feats, r_bn, means = jax.jit(lambda v: teacher_inversion_forward(teacher, v, x, instance_means=True))(
        variables)
    prior = td.BNPrior(twin)
    with torch.no_grad():
        t_logits, t_feats, t_r_bn, t_means = prior(twin, torch.tensor(np.asarray(x)).permute(0, 3, 1, 2), True)
    np.testing.assert_allclose(t_logits.numpy(), logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(t_r_bn), float(r_bn), rtol=1e-4)
    np.testing.assert_allclose(t_means.numpy(), means, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(td.stage_means(t_feats).numpy(), cmi.stage_inputs(feats), rtol=1e-4, atol=1e-5)


def _logits(seed, shape=(6, 5)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32) * 3


@pytest.mark.parametrize("name, torch_fn, jka_fn", [
    ("kd", lambda s, t: td.kd(s, t, 4.0), lambda s, t: losses.kd(s, t, 4.0)),
    ("js", lambda s, t: td.js(s, t, 3.0), lambda s, t: losses.js(s, t, 3.0)),
    ("adv", lambda s, t: td.adversarial_agreement(t, s), lambda s, t: cmi.adversarial_agreement(t, s)),
    ("bal", lambda s, t: td.balance(t), lambda s, t: priors.balance(t)),
])
def test_logit_formulas_match_jka(name, torch_fn, jka_fn):
    s, t = _logits(0), _logits(1)
    s[:3] = t[:3] + 0.1  # some argmaxes agree (the adversarial term's samples)
    got = float(torch_fn(torch.from_numpy(s), torch.from_numpy(t)))
    np.testing.assert_allclose(got, float(jka_fn(jnp.asarray(s), jnp.asarray(t))), rtol=1e-5, atol=1e-6)


def test_total_variation_matches_jka_in_nchw():
    v = np.random.default_rng(3).normal(size=(2, 5, 6, 3)).astype(np.float32)  # NHWC, not square
    got = float(td.total_variation(torch.from_numpy(v).permute(0, 3, 1, 2)))
    np.testing.assert_allclose(got, float(priors.total_variation(jnp.asarray(v))), rtol=1e-5)


def test_contrastive_term_matches_jka_with_bank_rows_and_empty_slots():
    rng = np.random.default_rng(4)
    local, glob = (rng.normal(size=(7, 4)).astype(np.float32) for _ in range(2))
    valid = np.array([True] * 3 + [True, True, False, False])  # 3 batch rows, 2 filled bank rows, 2 empty
    got = float(td.contrastive(torch.from_numpy(local), torch.from_numpy(glob), 0.5, torch.from_numpy(valid), 3))
    want = cmi.contrastive_loss(jnp.asarray(local), jnp.asarray(glob), 0.5, jnp.asarray(valid), n_batch=3)
    np.testing.assert_allclose(got, float(want), rtol=1e-5)


def test_bank_samples_distinct_filled_rows_first():
    bank = td.Ring(10, (1,), torch.float32, torch.device("cpu"))
    bank.add(torch.arange(4.0)[:, None] + 1)
    rows, valid = bank.sample_distinct(6)
    assert valid.tolist() == [True] * 4 + [False] * 2
    assert sorted(rows[:4, 0].tolist()) == [1, 2, 3, 4] and rows[4:].abs().sum() == 0


def test_global_view_is_a_window_of_the_padded_image():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8)
    out = td.crop_flip(x, pad=2, flip=False)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):
        windows = [padded[i, :, a:a + 8, b:b + 8] for a in range(5) for b in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_local_view_of_the_whole_image_is_the_image():
    x = torch.rand(4, 3, 8, 8)
    out = td.local_view(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    np.testing.assert_allclose(out.numpy(), x.numpy(), atol=1e-5)


def test_flip_mirrors_about_half_the_batch():
    torch.manual_seed(1)
    x = torch.rand(400, 1, 2, 2)
    out = td.flip_half(x)
    mirrored = [torch.equal(o, xi.flip(2)) and not torch.equal(o, xi) for o, xi in zip(out, x)]
    assert 150 < sum(mirrored) < 250


def test_tuned_sides_write_their_rows_and_jkas_speedups_over_them(tmp_path, monkeypatch):
    """--torch-tuned --tuned-only, DFAD's unit and CMI's round, tiny: the tuned rows with the folded bf16
    teacher, the plain rows left out, and jka's speed-ups over the tuned rows and its MFU (the jka side is
    a fixed row here: its step is timed by the families tests, and compiling it costs ~1 min of CPU)."""
    tiny("dfad", monkeypatch)
    tiny("cmi", monkeypatch, **{"cmi.bank_size": 64, "cmi.negatives": 16})
    jka_row = {"img_per_s": 1000.0, "ms_per_step": 4.0, "compile_s": 1.0, "mfu": 0.25, "flops_per_step": 1e6}
    monkeypatch.setattr(datafree_torch, "bench_jka", lambda name, args: dict(jka_row))
    out = tmp_path / "tuned.json"
    assert datafree_torch.main(["--only", "dfad,cmi", "--batch", "4", "--image-size", "8", "--iterations", "2",
                                "--steps", "2", "--warmup", "1", "--dtype", "bfloat16", "--torch-tuned",
                                "--tuned-only", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["torch_tuned"] and result["iterations_override"] == 2
    for task in ("dfad", "cmi"):
        r = result["families"][task]
        assert r["torch"] == r["torch_compile"] == {"skipped": "--tuned-only"}
        assert "skipped" in r["torch_tuned_compile"] and r["speedup_vs_torch_tuned_compile"] is None  # CPU: off
        row = r["torch_tuned"]
        assert "BatchNorms folded" in row["teacher"] and "bfloat16" in row["teacher"]
        assert row["ms_per_step"] > 0 and row["chained_ms_per_step"] > 0 and row["timed_steps"] == 2
        assert row["flops_per_step"] == 1e6 and np.isfinite(row["final_loss"])
        assert r["speedup_vs_torch_tuned_eager"] == pytest.approx(1000.0 / row["img_per_s"])
        assert r["mfu"] == 0.25 and r["speedup_vs_torch_eager"] is None
    assert "2 synthesis iterations + 2 student steps" in result["families"]["cmi"]["torch_tuned"]["unit"]
    assert datafree_torch.main(["--only", "dfad", "--tuned-only"]) == 2  # --tuned-only needs --torch-tuned


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-4), ("bfloat16", 5e-2)])
def test_tuned_folded_teacher_keeps_logits_bn_prior_and_cmi_features(dtype, tol, monkeypatch):
    """The tuned CMI side's teacher (BatchNorms folded by torch.fx, its weights in ``dtype``) gives the plain
    side's logits, R_bn (statistics recovered from the folded convolutions' outputs) and contrastive
    features on the same weights; running statistics and affine parameters are set away from 0 and 1 so
    that a wrong recovery shows."""
    tiny("cmi", monkeypatch, **{"cmi.bank_size": 64, "cmi.negatives": 16})

    def with_stats(arch, classes):
        net, g = torch_create(arch, classes), torch.Generator().manual_seed(7)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                for p, (lo, hi) in zip((m.running_mean, m.running_var, m.weight.data, m.bias.data),
                                       ((-0.5, 0.5), (0.5, 2.0), (0.5, 1.5), (-0.3, 0.3))):
                    p.copy_(torch.rand(p.shape, generator=g) * (hi - lo) + lo)
        return net

    monkeypatch.setattr(td, "torch_create", with_stats)
    sides = []
    for tuned, dt in ((False, "float32"), (True, dtype)):
        torch.manual_seed(0)
        sides.append(td.SIDES["cmi"](argparse.Namespace(batch=4, image_size=8, iterations=2, dtype=dt),
                                     torch.device("cpu"), False, tuned))
    plain, tuned = sides
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in tuned.teacher.modules())
    assert len(tuned.folded_bns) == 9 and tuned.teacher_dtype == getattr(torch, dtype)
    x = torch.randn(3, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        (want_t, want_r, want_f), (got_t, got_r, got_f) = plain.features(x), tuned.features(x)
    scale = lambda a: tol * float(a.abs().max())  # noqa: E731
    np.testing.assert_allclose(got_t.numpy(), want_t.numpy(), rtol=tol, atol=scale(want_t))
    np.testing.assert_allclose(float(got_r), float(want_r), rtol=tol)
    np.testing.assert_allclose(got_f.numpy(), want_f.numpy(), rtol=tol, atol=scale(want_f))
    with torch.no_grad():  # each BatchNorm's input statistics, and its per-sample means (non-ResNet CMI's feature)
        want, got = ([side.prior(side.run_teacher, x, means=True), side.prior.statistics(means=True)][1]
                     for side in (plain, tuned))
    assert len(got) == len(want) == 9
    for (_, *w), (_, *g) in zip(want, got):
        for a, b in zip(w, g):  # mean, variance, per-sample means
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=tol, atol=scale(a))
