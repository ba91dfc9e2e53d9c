"""Transferability without labels on a digits zoo: DEPARA and attribution distance vs real transfer.

    jka train configs/transfer/digits_study.py --workdir runs/transfer_study

Trains (once; reused afterwards) ten networks on relabelled digits under WORKDIR/zoo/: small_cnn
(width 0.5) on digit identity, parity, ≥5, mod 3, loops (0/6/8/9; 4 counted open), a random
partition of the digits into 3 groups and per-image random labels; wrn16_1 on digit, parity, mod 3.
Then, from 200 unlabelled probe images, builds every model's DEPARA graph, the similarity and
attribution-distance matrices, and checks them against measured transfer (held-out accuracy of a
logistic-regression probe on each source's pooled features, 100 labelled images, 5 draws) for six
targets. Measured: Spearman DEPARA 0.642 (p = 0.0005), attribution 0.683 (p = 0.0005); layer
selection within the measured best two for 4 of 6 targets (0.67); with transfer.layer_all_sources=True
(an earlier environment), over all 54 (target, source) pairs 0.574 against 0.5 by chance (binomial
p = 0.17, not significant).
About 5 min on a 2-core CPU (zoo ~4 min of it). Writes summary.json, study.json,
{depara,attribution}_{transfer.json,heatmap.png,graph.png} and depara_vs_transfer.png in WORKDIR.
The zoo alone: `jka transfer --zoo configs/transfer/digits_study.py --probe digits --out DIR`.
"""
from jka.recipes.transfer import digits_study


def get_config():
    return digits_study(small_steps=300, wrn_steps=200)
