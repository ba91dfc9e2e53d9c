"""Where every gradient of every method is taken and applied: :func:`minimize` differentiates a loss
of all the state's parameters with respect to one optimizer group's parts (or several groups', from
one backward pass) and applies each group's optimizer.
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
    """One update of ``groups`` (a name, or several) down the gradient of ``loss_fn(params) -> (loss,
    (new_batch_stats, metrics))``; ``params`` holds every part's, ``new_batch_stats`` the new statistics
    of the parts this pass updates. Returns (state, loss, metrics)."""
    names = (groups,) if isinstance(groups, str) else tuple(groups)
    trained = [p for name in names for p in state.group(name).parts]

    def f(sub):
        return loss_fn({**state.params, **sub})

    (loss, (new_bs, metrics)), grads = jax.value_and_grad(f, has_aux=True)({p: state.params[p] for p in trained})
    for i, name in enumerate(names):
        state = apply(state, name, grads, new_bs if i == 0 else None)
    return state, loss, metrics
