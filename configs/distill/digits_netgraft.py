"""NetGraft on digits (SPEC §4.3): a quarter-width VGG16 teacher on digits resized to 16 px, and the
quarter-width ``vgg16_graft`` student learnt from N unlabelled training images per class.

    jka train configs/distill/digits_netgraft.py --workdir /tmp/digits_netgraft
    jka train configs/distill/digits_netgraft.py --workdir /tmp/digits_netgraft_n1 netgraft.n_per_class=1

The teacher (trained from labels on the whole train split, in ``WORKDIR/teacher`` unless one is
there already; point ``teachers.0.workdir`` at a shared one to reuse it) reaches about 0.97; the
grafted student should reach >= 0.85 at N = 5 (see the README table for N = 1, 5, 10).
"""
from jka.recipes import base_config

WIDTH = 0.25
IMAGE_SIZE = 16


def teacher_config():
    cfg = base_config(algorithm="supervised")
    cfg.data.image_size = IMAGE_SIZE
    cfg.data.augment.crop_pad = 2
    cfg.model.name = "vgg16_teacher"
    cfg.model.kwargs = dict(width=WIDTH)
    cfg.optim.name = "adam"
    cfg.optim.lr = 1e-3
    cfg.optim.weight_decay = 0.0
    cfg.train.steps = 1200
    return cfg


def get_config():
    cfg = base_config(algorithm="netgraft")
    cfg.data.image_size = IMAGE_SIZE
    cfg.data.augment.crop_pad = 2
    cfg.data.augment.flip = False  # a flipped digit is not a digit; CIFAR configs flip
    cfg.model.name = "vgg16_graft"
    cfg.model.kwargs = dict(width=WIDTH)
    cfg.teachers = [dict(workdir="teacher", config=teacher_config())]
    cfg.optim.name = "adam"
    cfg.optim.lr = 2e-3
    cfg.optim.weight_decay = 0.0
    cfg.optim.schedule = "cosine"
    cfg.netgraft = dict(n_per_class=5, sample_seed=0, batch_size=None, block_steps=100, chain_steps=150,
                        eval_batch_size=256, eval_every_phase=False, start=0, stop=5, init_from=None)
    return cfg
