"""Where every gradient of every method is taken and applied.

A loss is a function of the parameters of all parts of a :class:`~jka.train.state.State`
(``params[part]``); :func:`minimize` differentiates it with respect to the parts of one optimizer
group (or of several, from one backward pass) and applies each group's optimizer. The loss returns
``(value, (new_batch_stats, metrics))``: ``new_batch_stats`` maps the parts whose BatchNorm statistics
this pass updates to their new statistics (the others keep theirs).
"""
from __future__ import annotations

from typing import Callable

import jax
import optax

from jka.train.state import State


def apply(state: State, group: str, grads: dict, batch_stats: dict | None = None) -> State:
    """``state`` with ``group``'s optimizer applied to ``grads`` (part → gradients of that group's
    parts) and ``batch_stats`` (part → statistics) merged in."""
    g = state.group(group)
    params = {p: state.params[p] for p in g.parts}
    updates, opt = g.tx.update({p: grads[p] for p in g.parts}, state.opt_state[group], params)
    params = optax.apply_updates(params, updates)
    return state.replace(params={**state.params, **params}, opt_state={**state.opt_state, group: opt},
                         batch_stats={**state.batch_stats, **(batch_stats or {})})


def minimize(state: State, groups: str | tuple, loss_fn: Callable):
    """One update of ``groups`` (a group name, or several updated from one backward pass) down the
    gradient of ``loss_fn(params) -> (loss, (new_batch_stats, metrics))``, where ``params`` holds every
    part's parameters and only the groups' parts are differentiated. Returns (state, loss, metrics)."""
    names = (groups,) if isinstance(groups, str) else tuple(groups)
    trained = [p for name in names for p in state.group(name).parts]

    def f(sub):
        return loss_fn({**state.params, **sub})

    (loss, (new_bs, metrics)), grads = jax.value_and_grad(f, has_aux=True)({p: state.params[p] for p in trained})
    for i, name in enumerate(names):
        state = apply(state, name, grads, new_bs if i == 0 else None)
    return state, loss, metrics
