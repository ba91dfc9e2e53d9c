"""Transferability without labels on a digits zoo: DEPARA and attribution distance vs real transfer.

    jka train transfer/digits_study --workdir runs/transfer_study

Trains (once; reused afterwards) ten networks on relabelled digits under WORKDIR/zoo/: small_cnn
(width 0.5) on digit identity, parity, ≥5, mod 3, loops (0/6/8/9; 4 counted open), a random
partition of the digits into 3 groups and per-image random labels; wrn16_1 on digit, parity, mod 3.
Then, from 200 unlabelled probe images, builds every model's DEPARA graph, the similarity and
attribution-distance matrices, and checks them against measured transfer (held-out accuracy of a
logistic-regression probe on each source's pooled features, 100 labelled images, 5 draws) for six
targets. Measured: Spearman DEPARA 0.642 (p = 0.0005), attribution 0.683 (p = 0.0005); layer
selection within the measured best two for 4 of 6 targets (0.67); with
transfer_study.layer_all_sources=True (an earlier environment), over all 54 (target, source) pairs
0.574 against 0.5 by chance (binomial p = 0.17, not significant).
About 5 min on a 2-core CPU (zoo ~4 min of it). Writes summary.json, study.json,
{depara,attribution}_{transfer.json,heatmap.png,graph.png} and depara_vs_transfer.png in WORKDIR.
The zoo alone: `jka transfer --zoo transfer/digits_study --probe digits --out DIR`.
"""
from jka.configs.common import config, digits_teacher
from jka.data.relabel import LABELINGS


def relabel_config(labeling: str, arch: str = "small_cnn", steps: int = 300, kwargs=None, seed: int = 0):
    """A supervised digits classifier on the labels ``labeling`` gives (``data.relabel``)."""
    cfg = digits_teacher(None, steps, arch, **dict(kwargs or {}))
    cfg.data.relabel = labeling
    cfg.data.relabel_seed = seed
    cfg.train.log_every = min(50, steps)
    return cfg


def zoo_specs(small_steps: int = 300, wrn_steps: int = 200) -> list[dict]:
    """Ten networks: small_cnn (width 0.5) on seven labelings, wrn16_1 on three."""
    specs = [dict(name=f"cnn_{lab}", workdir=f"zoo/cnn_{lab}", task=lab,
                  config=relabel_config(lab, "small_cnn", small_steps, {"width": 0.5})) for lab in LABELINGS]
    specs += [dict(name=f"wrn_{lab}", workdir=f"zoo/wrn_{lab}", task=lab,
                   config=relabel_config(lab, "wrn16_1", wrn_steps)) for lab in ("digit", "parity", "mod3")]
    return specs


def get_config(small_steps: int = 300, wrn_steps: int = 200):
    cfg = config("transfer_study", transfer_study=dict(
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
        zoo=zoo_specs(small_steps, wrn_steps)))
    cfg.train.progress = False
    return cfg
