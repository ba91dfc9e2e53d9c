"""What the amalgamation algorithms with extra trainable modules share (layer-wise, CFL, adaptive).

:class:`MultiPartAmalgamation`: a student over the union of the teachers' classes (teacher order),
no labels, and extra modules (blocks, aligners, projections) trained with it in one state,
``params = {'student': ..., 'blocks': ...}``. Subclasses implement ``build_modules``,
``module_inputs`` and ``amal_loss``.
"""
from __future__ import annotations

import flax.linen as nn
import jax

from jka.algorithms.base import Algorithm, union_classes
from jka.config import section
from jka.errors import ConfigError
from jka.train.state import TrainState, make_optimizer


def resize_to(f, like):
    """Resize map ``f`` (B, H, W, C) bilinearly to the spatial size of ``like``; vectors pass through."""
    if f.ndim != 4 or f.shape[1:3] == like.shape[1:3]:
        return f
    return jax.image.resize(f, (f.shape[0], like.shape[1], like.shape[2], f.shape[3]), "linear")


class MultiPartAmalgamation(Algorithm):
    """Student + extra trainable modules, learning from frozen teachers (no labels)."""

    name = "base"
    uses_labels = False
    amal_defaults: dict = {}  # the keys of ``cfg.amal`` the algorithm reads, with their defaults

    def __init__(self, cfg, teachers):
        if not teachers:
            raise ConfigError(f"algorithm {cfg.algorithm!r} needs at least one entry in teachers")
        self.amal = section(cfg, "amal", self.amal_defaults, cfg.algorithm)
        super().__init__(cfg, teachers)

    def default_student_classes(self, cfg, num_classes):
        union = union_classes(self.teachers)
        if len(set(union)) != len(union):
            raise ConfigError(f"teachers' class subsets overlap ({union}); {cfg.algorithm} needs disjoint "
                              "subsets (use 'adaptive' for overlapping teachers)")
        return union

    def teacher_outputs(self, teacher_vars, x):
        return [t(v, x) for t, v in zip(self.teachers, teacher_vars)]

    def feature(self, feats: dict, name: str, who: str):
        if name not in feats:
            raise ConfigError(f"{who} has no feature {name!r}; its features are {sorted(feats)}; fix amal.layers")
        return feats[name]

    def hooked(self, s_feats, t_feats, layers, who: str = "teacher", ids=None):
        """(student maps at ``layers``, per target network its maps of the same names resized to
        the student's); ``ids`` number the targets in error messages."""
        s_maps = [self.feature(s_feats, n, "the student") for n in layers]
        ids = range(len(t_feats)) if ids is None else ids
        t_maps = [[resize_to(self.feature(f, n, f"{who} {k}"), s) for n, s in zip(layers, s_maps)]
                  for k, f in zip(ids, t_feats)]
        return s_maps, t_maps

    def build_modules(self, s_feats, t_feats) -> nn.Module:
        raise NotImplementedError

    def module_inputs(self, s_feats, t_feats):
        raise NotImplementedError

    def amal_loss(self, params, batch_stats, t_out, x, step):
        """Returns ``(loss, (batch_stats, metrics))``."""
        raise NotImplementedError

    def init(self, rng, batch):
        k_s, k_b, k_state = jax.random.split(rng, 3)
        x = self.prepare(k_s, batch["image"][:2], augment=False)
        sv = self.student.init(k_s, x, train=False)
        _, s_feats = self.student.apply(sv, x, train=False)
        t_feats = [f for _, f in self.teacher_outputs([t.variables for t in self.teachers], x)]
        self.modules = self.build_modules(s_feats, t_feats)
        mv = self.modules.init(k_b, *self.module_inputs(s_feats, t_feats), train=False)
        params = {"student": sv["params"], "blocks": mv["params"]}
        batch_stats = {"student": sv.get("batch_stats", {}), "blocks": mv.get("batch_stats", {})}
        return TrainState.create(params, make_optimizer(self.cfg.optim, self.total_steps), k_state, batch_stats)

    def apply_modules(self, params, batch_stats, s_feats, t_feats, train: bool = True):
        variables = {"params": params["blocks"], "batch_stats": batch_stats["blocks"]}
        if train and batch_stats["blocks"]:
            out, upd = self.modules.apply(variables, *self.module_inputs(s_feats, t_feats), train=True,
                                          mutable=["batch_stats"])
            return out, upd["batch_stats"]
        return self.modules.apply(variables, *self.module_inputs(s_feats, t_feats), train=train), batch_stats["blocks"]

    def train_step(self, state, teacher_vars, batch):
        state, rng = state.next_rng()
        x = self.prepare(rng, batch["image"])
        t_out = self.teacher_outputs(teacher_vars, x)
        grad_fn = jax.value_and_grad(self.amal_loss, has_aux=True)
        (loss, (new_bs, metrics)), grads = grad_fn(state.params, state.batch_stats, t_out, x, state.step)
        state = state.apply_gradients(grads, batch_stats=new_bs)
        return state, {"loss": loss, **metrics}
