"""Transferability configs: the digits study (a zoo of relabelled-digits networks, scored without
labels against measured transfer)."""
from __future__ import annotations

import ml_collections

from jka.recipes import base_config
from jka.recipes.digits import digits_zoo_specs


def digits_study(small_steps: int = 300, wrn_steps: int = 200) -> ml_collections.ConfigDict:
    cfg = base_config(algorithm="transfer_study")
    cfg.zoo = digits_zoo_specs(small_steps=small_steps, wrn_steps=wrn_steps)
    cfg.train.progress = False
    cfg.transfer = ml_collections.ConfigDict(dict(
        probe_size=200,        # unlabelled probe images (digits train split)
        layer="logits",        # output whose graph stands for a model (g = ‖logits‖; edges: logit cosines)
        transfer_layer="pooled",  # features the measured-transfer linear probe is fitted on
        attribution="grad_input",
        lam=1.0,               # λ of the DEPARA similarity
        budget=100,            # labelled target images of the linear probe (measured transfer)
        repeats=5,             # random budgets averaged per (source, target)
        layer_repeats=10,      # random budgets per (layer, target) probe; 3 left the best-two set to noise
        permutations=2000,
        k=2,                   # graph picture: edges to the 2 nearest
        layer_all_sources=False,  # True also scores every (target, source) pair (slower)
        targets=["cnn_digit", "cnn_parity", "cnn_ge5", "cnn_mod3", "cnn_loops", "cnn_random_partition"],
    ))
    return cfg
