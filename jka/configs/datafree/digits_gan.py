"""A DCGAN on the 8×8 digits with one- or two-stage updates (GroupNorm discriminator; real images
feed only the discriminator), 2,000 steps of 64.

    jka train datafree/digits_gan --workdir runs/digits_gan
    jka train datafree/digits_gan:loss=symmetric,one_stage=False --workdir runs/digits_gan_sym2

Variants: ``loss=asymmetric`` (non-saturating, default) or ``symmetric`` (minimax);
``one_stage=True`` (default: one backward pass updates both players) or ``False`` (the usual
alternation); ``d_norm=group`` (default) or ``batch`` (two-stage only with the asymmetric loss).
Writes sample grids WORKDIR/samples_*.png at every evaluation (500 steps) that should look like
digits, and in summary.json eval.nn_distance, the mean distance of samples to their nearest real
training digit, next to eval.nn_distance_real_test, the same for real held-out digits (close values
mean realistic samples).
"""
from jka.configs.common import config

CHOICES = {"loss": ["asymmetric", "symmetric"], "one_stage": [True, False], "d_norm": ["group", "batch"]}


def get_config(loss: str = "asymmetric", one_stage: bool = True, d_norm: str = "group"):
    # 8×8 images need little capacity: ngf = ndf = 32
    cfg = config("gan", gan=dict(loss=loss, one_stage=bool(one_stage), d_norm=d_norm, ngf=32, ndf=32))
    cfg.data.batch_size = 64
    cfg.train.update(steps=2000, log_every=100, eval_every=500)
    return cfg
