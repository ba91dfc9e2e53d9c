"""CMI, contrastive model inversion (docs/methods.md, "Model inversion"): a re-initialised generator
and a learnable ``z`` per synthesis round; one loop step = one round + its student steps, compiled once.

Synthesis (``synthesis.steps``, Adam ``lr_g``): ``x = G(z)`` in two views made on the device, global
(crop pad ``crop_pad`` + flip) and local (resized crop, scale [0.25, 1], + flip);
``L = bn·R_bn + oh·CE(t, y) + adv·adv + cr·L_cr`` with balanced random labels ``y`` and
``adv = −mean KL(p_t ‖ p_s)`` over the samples whose argmaxes agree. ``L_cr``
(:func:`contrastive_loss`): a view's feature is a concatenation of per-sample spatial means
(``synthesis.features``): of the inputs of the teacher's four stages for ResNets (``stages``: the
stem's and layer1..3's outputs, 512 values for resnet18/34, as the reference script hooks
layer1..layer4), of every teacher BatchNorm input in call order for other teachers (``bn``);
``auto`` (default) picks as the reference does. A projection head (persistent across rounds, its own
Adam) embeds the local and global features of the batch and of ``negatives`` distinct entries of
the memory bank; positives on the diagonal; cross-entropy averaged over batch rows and bank rows
separately and added (a single mean would dilute the generator's gradient); empty bank slots are
masked out. The round's lowest-loss batch goes into the pool and its features into the bank; the
student learns ``kd(s, t, T=20)`` on pool batches.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jka import losses
from jka.algorithms.datafree.inversion import POOL_DEFAULTS, InversionAlgorithm, random_targets
from jka.algorithms.datafree.synthesis import RingBuffer, global_view, local_view, scan_steps, teacher_inversion_forward
from jka.errors import ConfigError, unknown_choice
from jka.losses import priors
from jka.models.generators import create_generator

# CMI: a generator (nz, ngf) and z trained by Adam(lr_g) per round, bn + oh + 0.5·adv + 0.8·cr; views
# with crop pad 4 / resized-crop scale [0.25, 1] and flips; bank, negatives, τ and the head's width.
CMI_DEFAULTS = dict(POOL_DEFAULTS, lr_g=1e-3, nz=256, ngf=64, bn=1.0, oh=1.0, adv=0.5, cr=0.8, crop_pad=4,
                    flip=True, local_scale=(0.25, 1.0), bank_size=40960, negatives=4096, tau=0.1, proj_dim=256,
                    features="auto", generator="small")
FEATURES = ("auto", "stages", "bn")
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")  # a ResNet's feature names, in order


def stage_inputs(feats: dict):
    """Per-sample spatial means of the inputs of layer1..layer4 (the stem's and layer1..3's outputs)."""
    return jnp.concatenate([feats[k].astype(jnp.float32).mean(axis=(1, 2)) for k in STAGES[:-1]], axis=-1)


class ProjectionHead(nn.Module):
    """Linear D→D, ReLU, Linear D→out, L2-normalise (rows)."""

    dim: int
    out: int = 256

    @nn.compact
    def __call__(self, f):
        h = nn.relu(nn.Dense(self.dim, name="fc1")(f.astype(jnp.float32)))
        return losses.l2_normalize(nn.Dense(self.out, name="fc2")(h))  # finite gradient at an all-zero row


def contrastive_loss(local_emb, global_emb, tau: float, valid=None, n_batch: int | None = None):
    """Cross-entropy of ``logits = local·sg(global)ᵀ/τ`` with positives on the diagonal.

    ``valid`` (rows,) masks rows that hold no data: their columns get no probability and their
    rows are left out of the mean. Without ``n_batch`` the mean is over all valid rows. With it,
    the first ``n_batch`` rows (this batch) and the rest (bank rows) are averaged separately and
    the two means added, as the CMI authors' code does: only the batch rows carry gradient to the
    generator, and one mean over batch + bank rows would shrink that gradient by
    ``n_batch / rows`` (1/17 with 256 images and 4096 negatives).
    """
    logits = local_emb @ jax.lax.stop_gradient(global_emb).T / tau
    n = logits.shape[0]
    if valid is None:
        valid = jnp.ones((n,), bool)
    logits = jnp.where(valid[None, :], logits, -1e9)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.diagonal(log_p)
    w = valid.astype(jnp.float32)
    mean = lambda a, b: jnp.sum(a * b) / jnp.maximum(b.sum(), 1.0)  # noqa: E731
    if n_batch is None:
        return mean(nll, w)
    return mean(nll[:n_batch], w[:n_batch]) + mean(nll[n_batch:], w[n_batch:])


def adversarial_agreement(t_logits, s_logits):
    """``−mean KL(p_t ‖ p_s)`` over the samples whose argmaxes agree (0 when none agree)."""
    kl = losses.kl_rows(jax.nn.log_softmax(t_logits.astype(jnp.float32), -1),
                        jax.nn.log_softmax(s_logits.astype(jnp.float32), -1))
    agree = (jnp.argmax(t_logits, -1) == jnp.argmax(s_logits, -1)).astype(jnp.float32)
    return -jnp.sum(kl * agree) / jnp.maximum(agree.sum(), 1.0)


class CMI(InversionAlgorithm):
    name = "cmi"
    synthesis_defaults = CMI_DEFAULTS

    def __init__(self, cfg, teachers):
        super().__init__(cfg, teachers)
        h, w, c = self.image_shape
        self.generator = create_generator(str(self.syn.generator), int(self.syn.nz), int(self.syn.ngf), h, c)
        x = jnp.zeros((2,) + self.image_shape, self.dtype)
        names = jax.eval_shape(lambda v: teacher_inversion_forward(self.teacher, v, x)[1], self.teacher.variables)
        kind = str(self.syn.features)
        if kind not in FEATURES:
            raise unknown_choice("synthesis.features", kind, FEATURES)
        resnet = all(k in names for k in STAGES)
        if kind == "stages" and not resnet:
            raise ConfigError(f"synthesis.features='stages' needs a ResNet teacher (features {', '.join(STAGES)}); "
                              f"{self.teacher.arch} has {', '.join(names)}: use 'bn'")
        self.stages = kind == "stages" or (kind == "auto" and resnet)
        # D = the feature width: the stage inputs' channels, or every BatchNorm input's.
        self.feat_dim = int(jax.eval_shape(lambda v: self.contrastive_feature(x, v)[1], self.teacher.variables).shape[-1])
        self.head = ProjectionHead(self.feat_dim, int(self.syn.proj_dim))
        self.head_tx = optax.adam(float(self.syn.lr_g), b1=0.5, b2=0.999)
        self.negatives = min(int(self.syn.negatives), int(self.syn.bank_size))

    def contrastive_feature(self, x, teacher_vars):
        """((teacher logits, R_bn), the (N, D) feature of ``x`` for the contrastive term)."""
        logits, feats, r_bn, means = teacher_inversion_forward(self.teacher, teacher_vars, x, not self.stages)
        return (logits, r_bn), stage_inputs(feats) if self.stages else means

    def init_extra(self, rng):
        head = self.head.init(rng, jnp.zeros((1, self.feat_dim)))["params"]
        bank = RingBuffer.create(int(self.syn.bank_size), (2 * self.feat_dim,), jnp.float32)
        return {"head": head, "head_opt": self.head_tx.init(head), "bank": bank}

    def synthesis_loss(self, trainable, gen_bs, y, teacher_vars, student, negatives, neg_valid, rng):
        s = self.syn
        k_g, k_l = jax.random.split(rng)
        x, upd = self.generator.apply({"params": trainable["gen"], "batch_stats": gen_bs}, trainable["z"],
                                      train=True, mutable=["batch_stats"])
        xg = self.normalise(global_view(k_g, x, int(s.crop_pad), bool(s.flip)))
        xl = self.normalise(local_view(k_l, x, tuple(s.local_scale), flip=bool(s.flip)))
        (t_logits, r_bn), f_global = self.contrastive_feature(xg, teacher_vars[0])
        _, f_local = self.contrastive_feature(xl, teacher_vars[0])
        s_logits = self.student_logits(jax.lax.stop_gradient(student.params), student.batch_stats, xg)
        oh = priors.one_hot(t_logits, y)
        adv = adversarial_agreement(t_logits, s_logits)
        # Batch rows first, then the sampled bank rows ([global | local] halves).
        g_all = jnp.concatenate([f_global, negatives[:, :self.feat_dim]], 0)
        l_all = jnp.concatenate([f_local, negatives[:, self.feat_dim:]], 0)
        valid = jnp.concatenate([jnp.ones((x.shape[0],), bool), neg_valid])
        emb = lambda f: self.head.apply({"params": trainable["head"]}, f)  # noqa: E731
        cr = contrastive_loss(emb(l_all), emb(g_all), float(s.tau), valid, n_batch=x.shape[0])
        loss = float(s.bn) * r_bn + float(s.oh) * oh + float(s.adv) * adv + float(s.cr) * cr
        feats = jnp.concatenate([f_global, f_local], -1)
        return loss, (upd["batch_stats"], x, feats, {"bn": r_bn, "oh": oh, "adv": adv, "cr": cr})

    def synthesize(self, state, teacher_vars, rng):
        k_g, k_z, k_y, k_neg, k_it = jax.random.split(rng, 5)
        n, c = self.syn_batch, len(self.student_classes)
        z = self.shard_batch(jax.random.normal(k_z, (n, int(self.syn.nz))))
        gv = self.generator.init(k_g, z, train=False)  # re-initialised every round
        y = random_targets(k_y, n, c)
        bank: RingBuffer = state.extra["bank"]
        negatives, neg_valid = bank.sample_distinct(k_neg, self.negatives)
        gen_tx = optax.adam(float(self.syn.lr_g), b1=0.5, b2=0.999)
        grad_fn = jax.value_and_grad(self.synthesis_loss, has_aux=True)
        img0 = jnp.zeros((n,) + self.image_shape, jnp.float32)
        feat0 = jnp.zeros((n, 2 * self.feat_dim), jnp.float32)

        def one(carry, key):
            tr, gen_bs, g_opt, h_opt, best_x, best_f, best_l = carry
            (loss, (gen_bs, x, feats, terms)), g = grad_fn(tr, gen_bs, y, teacher_vars, state.student,
                                                           negatives, neg_valid, key)
            better = loss < best_l
            best_x = jnp.where(better, jax.lax.stop_gradient(x), best_x)
            best_f = jnp.where(better, jax.lax.stop_gradient(feats), best_f)
            best_l = jnp.where(better, loss, best_l)
            gz = {"gen": tr["gen"], "z": tr["z"]}
            u, g_opt = gen_tx.update({"gen": g["gen"], "z": g["z"]}, g_opt, gz)
            gz = optax.apply_updates(gz, u)
            uh, h_opt = self.head_tx.update(g["head"], h_opt, tr["head"])
            tr = {**gz, "head": optax.apply_updates(tr["head"], uh)}
            return (tr, gen_bs, g_opt, h_opt, best_x, best_f, best_l), terms

        tr = {"gen": gv["params"], "z": z, "head": state.extra["head"]}
        init = (tr, gv["batch_stats"], gen_tx.init({"gen": tr["gen"], "z": z}), state.extra["head_opt"],
                img0, feat0, jnp.asarray(jnp.inf, jnp.float32))
        (tr, _, _, h_opt, best_x, best_f, best_l), terms = scan_steps(
            one, init, jax.random.split(k_it, int(self.syn.steps)))
        extra = {"head": tr["head"], "head_opt": h_opt, "bank": bank.add(best_f)}
        last = jax.tree.map(lambda a: a[-1], terms)
        return best_x, extra, {"syn_loss": best_l, "bank_count": extra["bank"].count.astype(jnp.float32),
                               **{f"syn_{k}": v for k, v in last.items()}}
