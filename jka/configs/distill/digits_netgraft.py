"""NetGraft on the digits: a quarter-width VGG16 teacher on digits resized to 16 px (trained first from
labels on the whole train split, in WORKDIR/teacher unless one is there) → the quarter-width
``vgg16_graft`` student, learnt from N unlabelled training images per class by block grafting (100
steps per block) then net grafting (150 steps per chain).

    jka train distill/digits_netgraft --workdir runs/digits_netgraft
    jka train distill/digits_netgraft netgraft.n_per_class=1 --workdir runs/digits_netgraft_n1

Measured (student alone on the 540 held-out digits, eval.accuracy; teacher 0.991): N=1 0.691, N=5
0.896, N=10 0.941 (random crop of 2 px, black; without it 0.583 / 0.804 / 0.902).
"""
from jka.configs.common import config


def get_config(width: float = 0.25, image_size: int = 16):
    teacher = config("supervised")
    teacher.data.image_size = image_size
    # NetGraft keeps the paper's random crop (2 px of 16, black) where the other digits configs drop
    # it: from N images per class the crop is most of what the student sees. Measured (2-core CPU,
    # seed 0): N=1/5/10 reach 0.583/0.804/0.902 without it, 0.691/0.896/0.941 with it.
    teacher.data.augment.crop_pad = 2
    teacher.model.name = "vgg16_teacher"
    teacher.model.kwargs = dict(width=width)
    teacher.optim.update(name="adam", lr=1e-3, weight_decay=0.0)
    teacher.train.steps = 1200

    cfg = config("netgraft", netgraft=dict(block_steps=100, chain_steps=150, eval_every_phase=False))
    cfg.data.image_size = image_size
    cfg.data.augment.crop_pad = 2
    cfg.data.augment.flip = False  # a flipped digit is not a digit; CIFAR configs flip
    cfg.model.name = "vgg16_graft"
    cfg.model.kwargs = dict(width=width)
    cfg.teachers = [dict(workdir="teacher", config=teacher)]
    cfg.optim.update(name="adam", lr=2e-3, weight_decay=0.0, schedule="cosine")
    return cfg
