"""NumPy reference formulas (float64) for the objective tests, written from the formulas of docs/methods.md and the papers only.

Nothing here imports jka's loss code: every expected value in ``tests/objectives`` is built from
these functions (or by hand), so a wrong sign, weight or reduction in jka cannot leak into the
expectation. ``TinyTeacher`` is a two-BatchNorm flax teacher whose forward pass is also written out
in NumPy (:func:`tiny_forward`), so the BN-statistics prior, the logits and CMI's features can be
computed independently of the code under test.
"""
from __future__ import annotations

import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jka import methods, models, run
from jka.methods.api import Context
from jka.methods.common import preparer
from jka.models.layers import BatchNorm, BN_EPS
from jka.train.teachers import Teacher


def f64(x):
    return np.asarray(x, np.float64)


def log_softmax(a):
    a = f64(a)
    a = a - a.max(-1, keepdims=True)
    return a - np.log(np.exp(a).sum(-1, keepdims=True))


def softmax(a):
    return np.exp(log_softmax(a))


def kl_rows(p, q):
    """KL(p ‖ q) per row of two probability arrays."""
    p, q = f64(p), f64(q)
    return np.sum(np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(q)), 0.0), axis=-1)


def standardize(z):
    """Logit standardisation (Sun et al., CVPR 2024): (z − mean z) / (std z + 1e-7) per row, unbiased std."""
    z = f64(z)
    return (z - z.mean(-1, keepdims=True)) / (z.std(-1, ddof=1, keepdims=True) + 1e-7)


def kd(s, t, T):
    """docs/methods.md: T² · KL(σ(t/T) ‖ σ(s/T)), summed over classes, mean over every other axis."""
    return T * T * kl_rows(softmax(f64(t) / T), softmax(f64(s) / T)).mean()


def js(s, t, T):
    """Jensen-Shannon divergence ½KL(p‖m) + ½KL(q‖m), m = ½(p + q), p = σ(s/T), q = σ(t/T); batch mean."""
    p, q = softmax(f64(s) / T), softmax(f64(t) / T)
    m = 0.5 * (p + q)
    return (0.5 * kl_rows(p, m) + 0.5 * kl_rows(q, m)).mean()


def ce(logits, labels):
    lp = log_softmax(logits)
    return -lp[np.arange(len(labels)), np.asarray(labels)].mean()


def soft_ce(logits, target_logits):
    return -(softmax(target_logits) * log_softmax(logits)).sum(-1).mean()


def one_hot_term(t, labels=None):
    """L_oh = CE(t, y), y = argmax t unless given."""
    return ce(t, np.argmax(t, -1) if labels is None else labels)


def act_term(f):
    return -np.abs(f64(f)).mean()


def bal_term(t):
    pbar = softmax(t).reshape(-1, np.shape(t)[-1]).mean(0)
    return float(np.sum(pbar * np.log(pbar)))


def r_bn(inputs, running):
    """docs/methods.md: Σ_ℓ ‖μ_batch − μ_run‖₂ + ‖var_batch − var_run‖₂ (biased variance, norms not squared).
    ``inputs``: list of BN input arrays (channels last); ``running``: list of (mean, var)."""
    total = 0.0
    for x, (mu_run, var_run) in zip(inputs, running):
        x = f64(x).reshape(-1, np.shape(x)[-1])
        total += np.linalg.norm(x.mean(0) - f64(mu_run)) + np.linalg.norm(x.var(0) - f64(var_run))
    return total


def tv_directions(x):
    """The four mean absolute neighbour differences (right, down, two diagonals) of an NHWC batch."""
    x = f64(x)
    return [np.abs(x[:, :, 1:] - x[:, :, :-1]).mean(), np.abs(x[:, 1:, :] - x[:, :-1, :]).mean(),
            np.abs(x[:, 1:, 1:] - x[:, :-1, :-1]).mean(), np.abs(x[:, 1:, :-1] - x[:, :-1, 1:]).mean()]


def tv_reference(x_normalised):
    """docs/methods.md: the SUM over the 4 directions of the mean |difference|, on the normalised input."""
    return float(sum(tv_directions(x_normalised)))


def l2n(x):
    x = f64(x)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def mmd2(x, y, sigmas=(0.001, 0.01, 0.05, 0.1, 0.2, 1.0, 2.0)):
    """Biased MMD² of L2-normalised flattened rows, multi-bandwidth RBF, clamped at 0 (docs/methods.md)."""
    x, y = l2n(f64(x).reshape(len(x), -1)), l2n(f64(y).reshape(len(y), -1))

    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(np.exp(-d2 / (2 * s * s)) for s in sigmas)

    return max(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean(), 0.0)


# ---------------------------------------------------------------------------------------------------
# A tiny teacher with a NumPy twin
# ---------------------------------------------------------------------------------------------------
class TinyTeacher(nn.Module):
    """x → BN0 → 1×1 conv (Dense on channels) → BN1 → ReLU → spatial mean ('pooled') → Dense.

    Both BatchNorms are jka's (they sow their inputs under ``bn_stats``), so the data-free code
    sees a regular zoo-like teacher: ``(logits, {'pooled': ...})``."""

    num_classes: int = 10
    hidden: int = 4

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = BatchNorm(use_running_average=not train, name="bn0")(x)
        h = nn.Dense(self.hidden, name="conv")(x)
        h = nn.relu(BatchNorm(use_running_average=not train, name="bn1")(h))
        pooled = h.mean(axis=(1, 2))
        return nn.Dense(self.num_classes, name="linear")(pooled), {"pooled": pooled}


def tiny_teacher_variables(seed: int, image_shape, num_classes=10, hidden=4):
    """Random parameters AND random running statistics (so R_bn and inference BN are non-trivial)."""
    module = TinyTeacher(num_classes, hidden)
    v = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(seed), jnp.zeros((1,) + tuple(image_shape)), train=False))
    rng = np.random.default_rng(seed + 100)
    params = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape) * 0.7, jnp.float32), v["params"])
    c = image_shape[-1]
    stats = {"bn0": {"mean": jnp.asarray(rng.normal(size=c) * 0.3, jnp.float32),
                     "var": jnp.asarray(rng.uniform(0.5, 2.0, size=c), jnp.float32)},
             "bn1": {"mean": jnp.asarray(rng.normal(size=hidden) * 0.3, jnp.float32),
                     "var": jnp.asarray(rng.uniform(0.5, 2.0, size=hidden), jnp.float32)}}
    return module, {"params": params, "batch_stats": stats}


def _bn_infer(x, p, s):
    return (x - f64(s["mean"])) / np.sqrt(f64(s["var"]) + BN_EPS) * f64(p["scale"]) + f64(p["bias"])


def tiny_forward(variables, x):
    """NumPy inference pass of :class:`TinyTeacher`: (logits, pooled, [BN inputs], [(μ_run, var_run)])."""
    p, s = variables["params"], variables["batch_stats"]
    x = f64(x)
    a0 = _bn_infer(x, p["bn0"], s["bn0"])
    h = a0 @ f64(p["conv"]["kernel"]) + f64(p["conv"]["bias"])
    a1 = np.maximum(_bn_infer(h, p["bn1"], s["bn1"]), 0.0)
    pooled = a1.mean(axis=(1, 2))
    logits = pooled @ f64(p["linear"]["kernel"]) + f64(p["linear"]["bias"])
    running = [(s["bn0"]["mean"], s["bn0"]["var"]), (s["bn1"]["mean"], s["bn1"]["var"])]
    return logits, pooled, [x, h], running


def tiny_teacher(seed: int = 0, image_shape=(8, 8, 1), classes=tuple(range(10))):
    from jka.train.teachers import Teacher

    module, variables = tiny_teacher_variables(seed, image_shape, len(classes))
    return Teacher("tiny", module, variables, list(classes), {})


def numpy_init(module, sample_shape, seed: int, **kw):  # kw: call options of the module, e.g. train=False
    """Variables of ``module`` with random NumPy values (shapes from ``jax.eval_shape``: nothing is
    compiled, which keeps these tests fast on a busy CPU). Kernels ~ N(0, 1/fan_in), biases and BN
    shifts small, BN scales around 1, running means small and running variances in [0.5, 2]."""
    shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros(sample_shape), **kw))
    v = numpy_fill({k: shapes[k] for k in ("params", "batch_stats") if k in shapes}, seed)
    return v


def numpy_fill(shapes, seed: int):
    """A tree ``{'params': ..., 'batch_stats': ...}`` of ShapeDtypeStructs filled as :func:`numpy_init`."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = str(path[-1].key)
        top = str(path[0].key)
        shape = leaf.shape
        if top == "batch_stats":
            v = rng.uniform(0.5, 2.0, shape) if name == "var" else rng.normal(size=shape) * 0.1
        elif name == "kernel":
            v = rng.normal(size=shape) / np.sqrt(max(1, int(np.prod(shape[:-1]))))
        elif name == "scale":
            v = rng.uniform(0.5, 1.5, shape)
        else:
            v = rng.normal(size=shape) * 0.1
        return jnp.asarray(v, jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def digits_method(method, algorithm: str, spec: str, overrides=(), teacher_width: float = 0.5):
    """A distillation method's pieces on one digits batch of 8, for its objective's tests: an untrained
    small_cnn teacher (the formula, not the values, is tested), the method's parts and settings, the
    state's shapes from tracing its init with random NumPy values, and the prepared inputs.
    ``method``: the method's module (``parts``, ``METHOD``); ``algorithm``: its registry name."""
    cfg = run.load(spec, ["data.batch_size=8", "train.progress=False", *overrides])
    module = models.create("small_cnn", 10, width=teacher_width)
    tv = numpy_init(module, (1, 8, 8, 1), 3, train=False)
    teacher = Teacher("small_cnn", module, tv, list(range(10)), {"width": teacher_width})
    settings = methods.get(algorithm).read(cfg)
    parts = method.parts(Context(cfg, settings, [teacher]))
    program = method.METHOD.program(cfg, [teacher], None)
    batch = program.batches.host_batch(0)
    shapes = jax.eval_shape(program.init, jax.random.PRNGKey(0), batch)
    v = numpy_fill({"params": shapes.params, "batch_stats": shapes.batch_stats}, 4)
    x = preparer(cfg, parts.data, parts.net.module.dtype)(None, batch["image"], augment=False)
    return types.SimpleNamespace(cfg=cfg, module=module, tv=tv, teacher=teacher, settings=settings, parts=parts,
                                 batch=batch, params=v["params"], batch_stats=v["batch_stats"], x=x)


def student_outputs(d):
    """The student's (logits, features) in training mode, as the loss computes them, for ``digits_method``'s ``d``."""
    (s, s_feats), _ = d.parts.net.module.apply({"params": d.params["student"], "batch_stats": d.batch_stats["student"]},
                                               d.x, train=True, mutable=["batch_stats"])
    return s, s_feats
