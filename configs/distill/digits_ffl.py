"""FFL on the digits: two quarter-width small CNNs trained together from labels with a fusion module
(online mutual distillation, no teacher), 400 steps, ramp over 10 epochs.

    jka train configs/distill/digits_ffl.py --workdir runs/digits_ffl
    jka train configs/distill/digits_ffl.py:alone=True --workdir runs/digits_ffl_alone

``alone=True``: one of the sub-networks trained alone from labels on the same budget (data, optimizer,
steps). Measured (mean of seeds 0, 1, 2: ``seed=1`` etc.): fused classifier (eval.accuracy) 0.9944,
sub-networks (eval.sub0_accuracy, sub1_accuracy) 0.9919 / 0.9901, alone 0.9870.
"""
from jka.recipes.distill import digits_ffl


def get_config(alone: bool = False):
    return digits_ffl(alone=bool(alone))
