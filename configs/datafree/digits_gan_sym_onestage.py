"""DCGAN on 8×8 digits, symmetric loss, one_stage=True (SPEC §5.1; GroupNorm discriminator).

Run: `jka train configs/datafree/digits_gan_sym_onestage.py --workdir /tmp/digits_gan_sym_onestage`.
Writes sample grids `WORKDIR/samples_*.png` that should look like digits, and in
`summary.json` the mean distance of samples to their nearest real training digit next to the
same distance for real held-out digits (close values mean realistic samples).
"""
from jka.algorithms.gan import digits_gan


def get_config():
    return digits_gan(loss="symmetric", one_stage=True)
