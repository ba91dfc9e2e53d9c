"""Transferability without labels on a digits zoo (SPEC §6): DEPARA and attribution distance vs real transfer.

Run:  jka train configs/transfer/digits_study.py --workdir runs/transfer_study
      (or python -m jka train ...)

Trains (once; reused afterwards) ten networks on relabelled digits under WORKDIR/zoo/: small_cnn
(width 0.5) on digit identity, parity, ≥5, mod 3, loops (0/6/8/9; 4 counted open), a random
partition of the digits into 3 groups and per-image random labels; wrn16_1 on digit, parity, mod 3.
Then, from 200 unlabelled probe images, builds every model's DEPARA graph, the similarity and
attribution-distance matrices, and checks them against measured transfer (held-out accuracy of a
logistic-regression probe on each source's pooled features, 100 labelled images, 5 draws) for six
targets. Should reach eval.spearman_depara_mean ≥ 0.5 with permutation p-value < 0.05, and a
layer_selection_fraction > 0.5. Measured (zoo reused, layer_all_sources=True): Spearman DEPARA 0.517
(p = 0.0005), attribution 0.314 (p = 0.016); layer selection 4 of 6 targets (0.67), and over all 54
(target, source) pairs 0.574 against 0.5 by chance (binomial p = 0.17, not significant). About 5 min on a 2-core CPU (zoo ~4 min of it).
Writes summary.json, study.json, {depara,attribution}_{transfer.json,heatmap.png,graph.png} and
depara_vs_transfer.png in WORKDIR.
"""
import ml_collections

from jka.algorithms.transfer_study import digits_zoo_specs
from jka.recipes import base_config


def get_config():
    cfg = base_config(algorithm="transfer_study")
    cfg.zoo = digits_zoo_specs(small_steps=300, wrn_steps=200)
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
