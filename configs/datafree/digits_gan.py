"""A DCGAN on the 8×8 digits with one- or two-stage updates (GroupNorm discriminator; real images
feed only the discriminator), 2,000 steps of 64.

    jka train configs/datafree/digits_gan.py --workdir runs/digits_gan
    jka train configs/datafree/digits_gan.py:loss=symmetric,one_stage=False --workdir runs/digits_gan_sym2

Variants: ``loss=asymmetric`` (non-saturating, default) or ``symmetric`` (minimax);
``one_stage=True`` (default: one backward pass updates both players) or ``False`` (the usual
alternation); ``d_norm=group`` (default) or ``batch`` (two-stage only with the asymmetric loss).
Writes sample grids WORKDIR/samples_*.png at every evaluation (500 steps) that should look like
digits, and in summary.json eval.nn_distance, the mean distance of samples to their nearest real
training digit, next to eval.nn_distance_real_test, the same for real held-out digits (close values
mean realistic samples).
"""
from jka.recipes.datafree import digits_gan


def get_config(loss: str = "asymmetric", one_stage: bool = True, d_norm: str = "group"):
    return digits_gan(loss=loss, one_stage=bool(one_stage), d_norm=d_norm)
