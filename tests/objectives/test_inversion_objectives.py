"""DeepInversion's and CMI's synthesis objectives (docs/methods.md) against NumPy, with a real tiny teacher.

The teacher is ``reference.TinyTeacher`` (two jka BatchNorms, random running statistics), whose
inference pass is re-written in NumPy, so its logits, the BN-statistics prior (BN-input moments) and
CMI's features (per-sample spatial means of every BN input) are computed independently of jka. The
student's logits come from running the student model (random NumPy parameters); CMI's images from
running its generator and its local view from ``local_view`` with the key the loss uses
(augmentation is an input here, not the objective). Augmentations that would need to be replayed are
switched off (DeepInversion: jitter 0, no flip; CMI: crop_pad 0, no flip, so the global view is the
image itself).

- DeepInversion: ``10·R_bn + CE(t, y) − js_{T=3}(s, t) + 0.001·L_tv`` (weights as literals), L_tv the
  SUM of the 4 directional mean |differences| of the (un-jittered) normalised inputs being optimised.
- CMI: ``R_bn + CE(t, y) + 0.5·adv + 0.8·L_cr``, adv = −mean over samples whose argmaxes agree of
  KL(p_t ‖ p_s); L_cr = CE of ``h(local)·h(global)ᵀ/τ`` (τ = 0.1) with positives on the diagonal over
  the batch plus 16 bank negatives (some slots empty, masked), mean over batch rows + mean over
  valid bank rows (jka's reading of the paper's "averaged over batch rows and bank rows").
"""
import jax
import jax.numpy as jnp
import numpy as np

from jka import run
from jka.configs.common import config
from jka.methods import get
from jka.methods.api import Context
from jka.methods.common import student_net
from jka.methods.datafree import cmi, deepinversion
from jka.methods.datafree import common as datafree
from jka.methods.datafree.synthesis import local_view
from tests.objectives import reference as ref

RTOL = 1e-5


def _setup(name, teacher, batch, **section):
    """(context, data, student net) of an inversion config on the digits with ``teacher``."""
    cfg = run.complete(config(name, **{name: section}))
    cfg.teachers = [dict(workdir="unused")]
    cfg.model.kwargs = dict(width=0.25)
    cfg.data.batch_size = batch
    ctx = Context(cfg, get(name).validate(cfg), [teacher])
    data = datafree.teachers_split(ctx)
    return ctx, data, student_net(ctx, len(data.classes))


def _student(net, data, seed):
    return ref.numpy_init(net.module, (1,) + data.image_shape, seed, train=False)


def _logits(net, student, x):
    return net.apply(student, jnp.asarray(x, jnp.float32), False)[0]


def _normalise(data, x01):
    return (ref.f64(x01) - np.asarray(data.mean)) / np.asarray(data.std)


def _deepinversion():
    teacher = ref.tiny_teacher(0)
    ctx, data, net = _setup("deepinversion", teacher, 8, jitter=0, flip=False, pool_size=8)
    v = np.random.default_rng(0).normal(size=(8,) + data.image_shape).astype(np.float32)  # normalised inputs
    y = np.arange(8) % 10
    student = _student(net, data, 1)
    loss, terms = deepinversion.synthesis_loss(ctx.settings, teacher, teacher.variables,
                                               lambda x: _logits(net, student, x), jnp.asarray(v), jnp.asarray(y),
                                               jax.random.PRNGKey(2), jnp.float32)
    s = np.asarray(_logits(net, student, v))
    t, _, inputs, running = ref.tiny_forward(teacher.variables, v)
    return ctx.settings, float(loss), terms, v, y, s, t, ref.r_bn(inputs, running)


def test_deepinversion_total_objective():
    syn, loss, terms, v, y, s, t, rbn = _deepinversion()
    assert (syn.bn, syn.oh, syn.adv, syn.tv, syn.js_T) == (10.0, 1.0, 1.0, 0.001, 3.0)
    tv = ref.tv_reference(v)                                # the reference: Σ of the 4 directional means, normalised input
    np.testing.assert_allclose(float(terms["bn"]), rbn, rtol=RTOL)
    np.testing.assert_allclose(float(terms["oh"]), ref.ce(t, y), rtol=RTOL)
    np.testing.assert_allclose(float(terms["js"]), ref.js(s, t, 3.0), rtol=RTOL)
    np.testing.assert_allclose(float(terms["tv"]), tv, rtol=RTOL)
    want = 10.0 * rbn + ref.ce(t, y) - ref.js(s, t, 3.0) + 0.001 * tv
    np.testing.assert_allclose(loss, want, rtol=RTOL)


def _np_head(p, f):
    h = np.maximum(ref.f64(f) @ ref.f64(p["fc1"]["kernel"]) + ref.f64(p["fc1"]["bias"]), 0.0)
    return ref.l2n(h @ ref.f64(p["fc2"]["kernel"]) + ref.f64(p["fc2"]["bias"]))


def _np_means(inputs):
    return np.concatenate([ref.f64(a).mean(axis=(1, 2)) for a in inputs], -1)


def test_cmi_total_objective():
    b, n_neg = 16, 16
    teacher = ref.tiny_teacher(3)
    ctx, data, net = _setup("cmi", teacher, b, nz=8, ngf=8, crop_pad=0, flip=False, bank_size=24, negatives=n_neg,
                            proj_dim=16, pool_size=b)
    syn = ctx.settings
    assert (syn.bn, syn.oh, syn.adv, syn.cr, syn.tau) == (1.0, 1.0, 0.5, 0.8, 0.1)
    p = cmi.parts(ctx, data)
    d = p.feat_dim
    assert d == 1 + 4          # BN0 input (1 channel) + BN1 input (4 channels)
    gen = ref.numpy_init(p.generator, (2, 8), 4, train=False)
    head = ref.numpy_init(cmi.ProjectionHead(d, 16), (1, d), 5)["params"]
    rng = np.random.default_rng(6)
    z = rng.normal(size=(b, 8)).astype(np.float32)
    negatives = rng.normal(size=(n_neg, 2 * d)).astype(np.float32)
    neg_valid = np.arange(n_neg) < 10          # 6 empty bank slots
    y = np.arange(b) % 10
    key = jax.random.PRNGKey(8)
    # inputs: G(z) and the local view with the loss's key
    x_ref, _ = p.generator.apply(gen, jnp.asarray(z), train=True, mutable=["batch_stats"])
    # a student that agrees with the teacher on about half the samples: its logit of the teacher's
    # commonest class c is raised by a margin between the middle two of (max_{k≠c} s_k − s_c)
    t_first = ref.tiny_forward(teacher.variables, _normalise(data, x_ref))[0]
    c = np.bincount(np.argmax(t_first, -1)).argmax()
    student = _student(net, data, 7)
    s0 = np.asarray(_logits(net, student, _normalise(data, x_ref)), np.float64)
    margins = np.sort(np.delete(s0, c, axis=1).max(1) - s0[:, c])
    student["params"]["linear"]["bias"] = student["params"]["linear"]["bias"].at[c].add(
        0.5 * (margins[b // 2 - 1] + margins[b // 2]))

    params = {"generator": gen["params"], "z": jnp.asarray(z), "head": head}
    # jit: one compilation instead of one per operation (same function, same values)
    loss_fn = jax.jit(lambda pr, bs, neg, valid: cmi.synthesis_loss(
        syn, p, pr, bs, jnp.asarray(y), teacher.variables, lambda x: _logits(net, student, x), neg, valid, key))
    loss, (_, x, _, terms) = loss_fn(params, gen["batch_stats"], jnp.asarray(negatives), jnp.asarray(neg_valid))
    np.testing.assert_allclose(np.asarray(x), np.asarray(x_ref), rtol=1e-5, atol=1e-6)   # the loss's image is G(z)
    _, k_local = jax.random.split(key)
    xl01 = local_view(k_local, x, tuple(syn.local_scale), flip=False)
    xg, xl = _normalise(data, x), _normalise(data, xl01)
    s = np.asarray(_logits(net, student, xg))

    # the terms, in NumPy
    t, _, inputs_g, running = ref.tiny_forward(teacher.variables, xg)
    _, _, inputs_l, _ = ref.tiny_forward(teacher.variables, xl)
    rbn = ref.r_bn(inputs_g, running)
    oh = ref.ce(t, y)
    agree = np.argmax(t, -1) == np.argmax(s, -1)
    assert 0 < agree.sum() < b, agree      # both kinds of samples are present
    kl = ref.kl_rows(ref.softmax(t), ref.softmax(s))
    adv = -kl[agree].mean()
    g_all = np.concatenate([_np_means(inputs_g), negatives[:, :d]], 0)
    l_all = np.concatenate([_np_means(inputs_l), negatives[:, d:]], 0)
    valid = np.concatenate([np.ones(b, bool), neg_valid])
    logits = _np_head(head, l_all) @ _np_head(head, g_all).T / 0.1
    logits = logits[np.ix_(valid, valid)]                 # empty slots: no row, no column
    nll = -np.diag(ref.log_softmax(logits))
    cr = nll[:b].mean() + nll[b:].mean()

    np.testing.assert_allclose(float(terms["bn"]), rbn, rtol=RTOL)
    np.testing.assert_allclose(float(terms["oh"]), oh, rtol=RTOL)
    np.testing.assert_allclose(float(terms["adv"]), adv, rtol=RTOL)
    np.testing.assert_allclose(float(terms["cr"]), cr, rtol=RTOL)
    np.testing.assert_allclose(float(loss), rbn + oh + 0.5 * adv + 0.8 * cr, rtol=RTOL)
