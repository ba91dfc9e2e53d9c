"""The distillation zoo's total ``α·kd(s, t, T) + β·CE(s, y) + γ·L_extra`` (docs/methods.md) against NumPy.

For ``kd`` alone, attention transfer (``at``) and similarity-preserving KD (``sp``), the loss that
``Distill.loss`` reports is compared with the total computed in NumPy from the same student/teacher
logits and stage features (obtained by running the two small_cnn models directly), with the
default (α, β, γ) of the documented table written as literals. kd convention checked: T²·KL(σ(t/T) ‖ σ(s/T)),
summed over classes, batch mean (jka.losses.kd and docs/methods.md agree), T = 4 (cfg.loss.T of the zoo).
AT: Σ_stages mean((a(F_s) − a(F_t))²) with a(F) = L2-normalise(vec(mean_c F²)) over every spatial
stage (block1..block3 of small_cnn); SP: ‖G_t − G_s‖²_F / B² on the last stage, G = row-normalised f fᵀ.
"""
import jax
import numpy as np

from jka import models
from jka.algorithms.distill.zoo import Distill
from jka.losses.distill import TERMS
from jka.recipes.distill import digits_zoo
from jka.train.teachers import Teacher
from tests.objectives import reference as ref

RTOL = 1e-5
PAPER_DEFAULTS = {"kd": (0.9, 0.1, 0.0), "hint": (0.9, 0.1, 100.0), "at": (1.0, 0.1, 1000.0), "sp": (0.9, 0.1, 3000.0),
                 "cc": (0.9, 0.1, 0.02), "vid": (0.0, 1.0, 1.0), "rkd": (0.9, 0.1, 1.0), "pkt": (0.9, 0.1, 30000.0),
                 "nst": (0.9, 0.1, 50.0), "svd": (0.9, 0.1, 10.0)}


def _setup(method):
    cfg = digits_zoo(method)
    cfg.data.batch_size = 8
    cfg.train.progress = False
    module = models.create("small_cnn", 10, width=0.5)   # untrained: the formula, not the values, is tested
    tv = ref.numpy_init(module, (1, 8, 8, 1), 3, train=False)
    teacher = Teacher("small_cnn", module, tv, list(range(10)), {"width": 0.5})
    algo = Distill(cfg, [teacher])
    batch = algo.train_batches(0).host_batch(0)
    # The state's shapes from tracing init (which also picks the stages); random NumPy values.
    shapes = jax.eval_shape(algo.init, jax.random.PRNGKey(0), batch)
    v = ref.numpy_fill({"params": shapes.params, "batch_stats": shapes.batch_stats}, 4)
    params, batch_stats = v["params"], v["batch_stats"]
    x = algo.prepare(None, batch["image"], augment=False)
    loss, (_, metrics) = algo.loss(params, batch_stats, [tv], x, batch, jax.random.PRNGKey(1))
    # the same logits/features, straight from the two models (student in training mode, as the loss)
    (s, s_feats), _ = algo.student.apply({"params": params["student"], "batch_stats": batch_stats["student"]}, x,
                                         train=True, mutable=["batch_stats"])
    t, t_feats = module.apply(tv, x, train=False)
    return algo, float(loss), metrics, s, s_feats, t, t_feats, np.asarray(batch["label"])


def _at_np(fs_list, ft_list):
    def a(f):
        return ref.l2n((ref.f64(f) ** 2).mean(-1).reshape(len(f), -1))
    return sum(np.mean((a(fs) - a(ft)) ** 2) for fs, ft in zip(fs_list, ft_list))


def _sp_np(fs, ft):
    def g(f):
        f = ref.f64(f).reshape(len(f), -1)
        return ref.l2n(f @ f.T)
    return np.sum((g(ft) - g(fs)) ** 2) / len(fs) ** 2


def test_default_weights_are_the_spec_table():
    for name, want in PAPER_DEFAULTS.items():
        assert TERMS[name].defaults == want, name


def test_kd_alone_total():
    algo, loss, metrics, s, _, t, _, y = _setup("kd")
    assert (algo.alpha, algo.beta, algo.gamma, algo.T) == (0.9, 0.1, 0.0, 4.0)
    want = 0.9 * ref.kd(s, t, 4.0) + 0.1 * ref.ce(s, y)
    np.testing.assert_allclose(float(metrics["kd"]), ref.kd(s, t, 4.0), rtol=RTOL)
    np.testing.assert_allclose(loss, want, rtol=RTOL)


def test_attention_transfer_total():
    algo, loss, metrics, s, s_feats, t, t_feats, y = _setup("at")
    stages = ["block1", "block2", "block3"]
    assert algo.s_names == stages and algo.t_names == stages
    l_at = _at_np([s_feats[n] for n in stages], [t_feats[n] for n in stages])
    assert l_at > 0
    np.testing.assert_allclose(float(metrics["extra_at"]), l_at, rtol=RTOL)
    want = 1.0 * ref.kd(s, t, 4.0) + 0.1 * ref.ce(s, y) + 1000.0 * l_at
    np.testing.assert_allclose(loss, want, rtol=RTOL)


def test_similarity_preserving_total():
    algo, loss, metrics, s, s_feats, t, t_feats, y = _setup("sp")
    assert algo.s_names == ["block3"] and algo.t_names == ["block3"]
    l_sp = _sp_np(s_feats["block3"], t_feats["block3"])
    np.testing.assert_allclose(float(metrics["extra_sp"]), l_sp, rtol=RTOL)
    want = 0.9 * ref.kd(s, t, 4.0) + 0.1 * ref.ce(s, y) + 3000.0 * l_sp
    np.testing.assert_allclose(loss, want, rtol=RTOL)
