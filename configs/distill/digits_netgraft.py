"""NetGraft on the digits: a quarter-width VGG16 teacher on digits resized to 16 px (trained first from
labels on the whole train split, in WORKDIR/teacher unless one is there) → the quarter-width
``vgg16_graft`` student, learnt from N unlabelled training images per class by block grafting (100
steps per block) then net grafting (150 steps per chain).

    jka train configs/distill/digits_netgraft.py --workdir runs/digits_netgraft
    jka train configs/distill/digits_netgraft.py netgraft.n_per_class=1 --workdir runs/digits_netgraft_n1

Measured (student alone on the 540 held-out digits, eval.accuracy; teacher 0.991): N=1 0.691, N=5
0.896, N=10 0.941 (random crop of 2 px, black; without it 0.583 / 0.804 / 0.902).
"""
from jka.recipes.distill import digits_netgraft


def get_config():
    return digits_netgraft()
