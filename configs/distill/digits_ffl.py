"""FFL on digits (SPEC §4.2): two quarter-width small CNNs trained together with a fusion module.

    jka train configs/distill/digits_ffl.py --workdir /tmp/digits_ffl

Compare with the same sub-network trained alone on the same budget (same steps, batch, optimizer):

    jka train configs/distill/digits_ffl_alone.py --workdir /tmp/digits_ffl_alone

Expected: the fused classifier (``accuracy``) is at least as accurate as each sub-network
(``sub0_accuracy``, ``sub1_accuracy``), and each sub-network beats ``digits_ffl_alone`` on average
over seeds (``seed=1``, ``seed=2`` overrides); see the README table.
"""
from jka.recipes import base_config

SUBNET = dict(name="small_cnn", kwargs=dict(width=0.25))
STEPS = 400


def budget(cfg):
    """What FFL and its trained-alone baseline share: data, sub-network, optimizer, steps."""
    cfg.data.augment.crop_pad = 1
    cfg.model.name = SUBNET["name"]
    cfg.model.kwargs = dict(SUBNET["kwargs"])
    cfg.optim.lr = 0.05
    cfg.optim.weight_decay = 5e-4
    cfg.optim.schedule = "cosine"
    cfg.train.steps = STEPS
    return cfg


def get_config():
    cfg = budget(base_config(algorithm="ffl"))
    # 1,257 training digits / batch 64 = 19 steps per epoch: 400 steps ≈ 21 epochs, ramp over 10.
    cfg.ffl = dict(num_branches=2, branches=None, shared_trunk=False, feature_key="auto", T=3.0,
                   ramp_epochs=10, fusion_channels=None, fusion_optim=dict(weight_decay=1e-5))
    return cfg
