"""The objectives of data-free amalgamation (see the package docstring): the generator's ``L_gan`` and
intermediate-group consistency, and the dual network's "reproduce the teachers" loss."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jka import losses
from jka.losses import priors


def soft_ce(logits, target_logits):
    return losses.soft_cross_entropy(logits, jax.lax.stop_gradient(jax.nn.softmax(target_logits, -1)))


def union_logits(ys, label_idx):
    """The teachers' raw logits over the requested labels, concatenated: one classifier of the union."""
    return jnp.concatenate([y[:, idx] for y, idx in zip(ys, label_idx)], -1)


def gan_terms(y, pooled, multilabel: bool):
    """(L_oh, L_act, L_ie, L_dis) of one teacher's logits ``y`` and penultimate features."""
    if multilabel:
        t = jax.lax.stop_gradient((jax.nn.sigmoid(y) >= 0.5).astype(jnp.float32))
        l_oh = optax.sigmoid_binary_cross_entropy(y, t).mean()
        p = jax.nn.sigmoid(y)
    else:
        l_oh = priors.one_hot(y)
        p = jax.nn.softmax(y, -1)
    return l_oh, priors.activation(pooled), priors.balance(y), jnp.mean(jnp.abs(p))


def claims(ys, label_idx):
    """(B, M) share of each teacher in the union softmax (which teacher an image belongs to)."""
    p = jax.nn.softmax(union_logits(ys, label_idx), -1)
    bounds = np.cumsum([0] + [len(i) for i in label_idx])
    return jnp.stack([p[:, a:b].sum(-1) for a, b in zip(bounds[:-1], bounds[1:])], -1)


def gan_loss(s, ys, pooled, inter, label_idx=None, l_bn=None):
    """(``L_gan + inter·L_inter``, terms). ``ys``/``pooled``: per teacher, on the image; ``inter``: per
    intermediate group, the per-teacher logits from its feature. Each term per teacher and averaged (an
    image is pushed to be a confident class of every teacher at once), or with ``s.joint`` (jka's variant,
    multi-class) over :func:`union_logits`, so every image is claimed by one teacher."""
    if s.joint and not s.multilabel:
        y = union_logits(ys, label_idx)
        l_oh, _, l_ie, l_dis = gan_terms(y, pooled[0], False)
        l_act = jnp.mean(jnp.stack([priors.activation(f) for f in pooled]))
        target = jax.nn.softmax(y, -1)
        l_inter = [losses.soft_cross_entropy(union_logits(yj, label_idx), jax.lax.stop_gradient(target))
                   for yj in inter]
    else:
        terms = [gan_terms(y, f, bool(s.multilabel)) for y, f in zip(ys, pooled)]
        l_oh, l_act, l_ie, l_dis = (jnp.mean(jnp.stack(v)) for v in zip(*terms))
        l_inter = [soft_ce(y_j, ys[m]) for yj in inter for m, y_j in enumerate(yj)]
    l_bn = jnp.zeros(()) if l_bn is None else l_bn
    l_gan = l_oh + s.alpha * l_act + s.beta * l_ie + s.gamma * l_dis + s.bn * l_bn
    l_inter = jnp.mean(jnp.stack(l_inter)) if l_inter else jnp.zeros(())
    loss = l_gan + s.inter * l_inter
    return loss, {"oh": l_oh, "act": l_act, "ie": l_ie, "dis": l_dis, "bn": l_bn, "inter": l_inter, "gan": l_gan}


def reproduce_loss(s, heads, targets):
    """``Σ_m CE(g_m(O_m(F)), g_m(O_m(I_g)))`` over the requested labels; with ``s.joint`` plus the CE of all
    heads concatenated, so they stay comparable in one argmax (blind to a constant added to one head)."""
    loss = sum(soft_ce(y, t) for y, t in zip(heads, targets))
    if s.joint and not s.multilabel:
        loss = loss + soft_ce(jnp.concatenate(heads, -1), jnp.concatenate(targets, -1))
    return loss
