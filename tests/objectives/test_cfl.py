"""CFL's total objective (docs/methods.md) against NumPy:
``L = w0·kd(s, concat_k t_k, 1) + w1·Σ_groups Σ_k MMD²(h_s, h_k) + w2·Σ_groups Σ_k MSE(D_k(h_k), f_tk)``
with the default weights (1, 10, 10) written as literals.

The student/teacher logits and features come from running the models, and ``h_s``, ``h_k``,
``D_k(h_k)`` from running the CFL modules (aligners, shared extractor, decoders) on the features
picked by hand; the three terms and their weighted sum are then computed in NumPy (MMD²: rows
flattened and L2-normalised, RBF kernels summed over σ ∈ {0.001, 0.01, 0.05, 0.1, 0.2, 1, 2},
biased estimator, clamped at 0) and compared with what ``cfl.objective`` (the loss CFL's step
minimises) returns. Two heterogeneous teachers (small_cnn of two widths), a map group (block3) and a
vector group (pooled). The paper's default for four teachers, (1, 20, 20), is checked separately.
"""
import jax
import numpy as np

from jka import models, run
from jka.configs.common import config
from jka.methods import common
from jka.methods.amalgamation import cfl, parts
from jka.methods.api import Context
from jka.train.teachers import Teacher
from tests.objectives import reference as ref

RTOL = 1e-5


def _teacher(classes, width, seed):
    m = models.create("small_cnn", len(classes), width=width)
    return Teacher("small_cnn", m, ref.numpy_init(m, (1, 8, 8, 1), seed, train=False), list(classes), {"width": width})


def _ctx(teachers, layers=("block3", "pooled"), **section):
    cfg = run.complete(config("cfl", cfl=dict(layers=list(layers), **section)))
    cfg.train.steps = 2
    cfg.model.kwargs = {"width": 0.5}
    cfg.data.batch_size = 6
    return Context(cfg, cfl.METHOD.read(cfg), teachers)


def test_cfl_total_objective_matches_numpy():
    teachers = [_teacher(range(5), 0.25, 0), _teacher(range(5, 10), 0.5, 1)]
    ctx = _ctx(teachers)
    assert cfl.weights(ctx.settings, 2) == (1.0, 10.0, 10.0) and ctx.settings.T == 1.0
    program = cfl.build(ctx)
    net = common.student_net(ctx, 10)
    gather = cfl.grouper(ctx.settings, teachers)
    modules = cfl.modules(ctx.settings, *parts.shapes(ctx, net, program.data, gather))
    batch = program.batches.host_batch(0)
    # The state's shapes from tracing init; random NumPy values.
    shapes = jax.eval_shape(program.init, jax.random.PRNGKey(0), batch)
    v = ref.numpy_fill({"params": shapes.params, "batch_stats": shapes.batch_stats}, 5)
    params, batch_stats = v["params"], v["batch_stats"]
    x = common.preparer(ctx.cfg, program.data, ctx.dtype)(None, batch["image"], augment=False)
    tv = [t.variables for t in teachers]
    t_out = parts.teacher_outputs(teachers, tv, x)
    loss, (_, metrics) = cfl.objective(ctx.settings, 2, net, modules, gather)(params, batch_stats, t_out, x, 0)

    (s, s_feats), _ = net.module.apply({"params": params["student"], "batch_stats": batch_stats["student"]}, x,
                                       train=True, mutable=["batch_stats"])
    t_logits = [t.module.apply(v, x, train=False)[0] for t, v in zip(teachers, tv)]
    t_feats = [t.module.apply(v, x, train=False)[1] for t, v in zip(teachers, tv)]
    s_list = [s_feats["block3"], s_feats["pooled"]]
    t_lists = [[f["block3"] for f in t_feats], [f["pooled"] for f in t_feats]]   # same 4×4 size: no resize
    outs, _ = modules.apply({"params": params["blocks"], "batch_stats": batch_stats["blocks"]},
                                 s_list, t_lists, train=True, mutable=["batch_stats"])
    l_amal = sum(ref.mmd2(h_s, h_k) for (h_s, h_ts, _) in outs for h_k in h_ts)
    l_rec = sum(np.mean((ref.f64(r) - ref.f64(f)) ** 2) for (_, _, recs), fts in zip(outs, t_lists)
                for r, f in zip(recs, fts))
    l_kd = ref.kd(s, np.concatenate([np.asarray(t) for t in t_logits], -1), 1.0)
    assert l_amal > 0 and l_rec > 0
    np.testing.assert_allclose(float(metrics["amal"]), l_amal, rtol=RTOL)
    np.testing.assert_allclose(float(metrics["rec"]), l_rec, rtol=RTOL)
    np.testing.assert_allclose(float(metrics["kd"]), l_kd, rtol=RTOL)
    np.testing.assert_allclose(float(loss), 1.0 * l_kd + 10.0 * l_amal + 10.0 * l_rec, rtol=RTOL)


def test_mmd2_hand_values():
    """Identical batches ⇒ 0; two orthogonal unit rows vs their swap ⇒ 0 too (same set); a one-row
    batch vs an orthogonal row: K_xx = K_yy = 7, K_xy = Σ_σ exp(−2/(2σ²))."""
    from jka.losses.amalgamation import mmd2

    a = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    assert float(mmd2(a, a)) == 0.0
    np.testing.assert_allclose(float(mmd2(a, a[::-1])), 0.0, atol=1e-6)
    sig = np.array([0.001, 0.01, 0.05, 0.1, 0.2, 1.0, 2.0])
    want = 14.0 - 2.0 * np.exp(-1.0 / sig ** 2).sum()
    np.testing.assert_allclose(float(mmd2(a[:1] * 3.0, a[1:])), want, rtol=RTOL)   # rows are L2-normalised first


def test_cfl_default_weights_with_four_teachers():
    teachers = [_teacher(c, 0.25, k) for k, c in enumerate(([0, 1], [2, 3], [4, 5], [6, 7]))]
    s = _ctx(teachers, layers=["block3"]).settings
    assert s.weights is None
    assert cfl.weights(s, len(teachers)) == (1.0, 20.0, 20.0)
    assert cfl.weights(s, len(teachers[:2])) == (1.0, 10.0, 10.0)
