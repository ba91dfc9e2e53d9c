"""Tiny random-initialised teachers exported as jka models (no training)."""
import os

import jax
import numpy as np

from jka import models
from jka.train.export import export_model


def make_teacher(directory, arch, num_classes, image_size=8, channels=1, seed=0, **kwargs):
    """Export a randomly initialised ``arch`` with ``num_classes`` outputs into ``directory``."""
    module = models.create(arch, num_classes, **kwargs)
    x = np.zeros((1, image_size, image_size, channels), np.float32)
    variables = module.init(jax.random.PRNGKey(seed), x, train=False)
    variables = {k: v for k, v in variables.items() if k in ("params", "batch_stats")}
    export_model(os.path.join(directory, "model"), arch, num_classes, variables, kwargs=kwargs)
    return str(directory)
