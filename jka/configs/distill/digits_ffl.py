"""FFL on the digits: two quarter-width small CNNs trained together from labels with a fusion module
(online mutual distillation, no teacher), 400 steps, ramp over 10 epochs.

    jka train distill/digits_ffl --workdir runs/digits_ffl
    jka train distill/digits_ffl:alone=True --workdir runs/digits_ffl_alone

``alone=True``: one of the sub-networks trained alone from labels on the same budget (data, optimizer,
steps). Measured (mean of seeds 0, 1, 2: ``seed=1`` etc.): fused classifier (eval.accuracy) 0.9944,
sub-networks (eval.sub0_accuracy, sub1_accuracy) 0.9919 / 0.9901, alone 0.9870.
"""
from jka.configs.common import config

CHOICES = {"alone": [False, True]}


def get_config(alone: bool = False):
    # 1,257 training digits / batch 64 = 19 steps per epoch: 400 steps ≈ 21 epochs, ramp over 10.
    cfg = config("supervised") if alone else config("ffl", ffl=dict(ramp_epochs=10))
    cfg.model.kwargs = dict(width=0.25)
    cfg.optim.update(lr=0.05, weight_decay=5e-4, schedule="cosine")
    cfg.train.steps = 400
    return cfg
