"""The distillation zoo's reference run: WRN-40-2 → WRN-16-2 on CIFAR-100 with any method of the zoo.
SGD 0.05, momentum 0.9, wd 5e-4, batch 64, 240 epochs (about 188k steps), cosine, T = 4; random crop
(pad 4) + flip.

    jka train configs/distill/cifar100.py:method=at teachers.0.workdir=/abs/path/runs/c100_wrn40_2 \
        --workdir runs/c100_at_wrn40_2_wrn16_2

The teacher is an exported model directory: a jka run or the RepDistiller ``wrn_40_2`` checkpoint
converted with ``jka convert wrn40_2 ckpt_epoch_240.pth runs/c100_wrn40_2 --num-classes 100`` (the
default teacher workdir ``../c100_wrn40_2`` is a sibling of ``--workdir``). The PyTorch originals
report (teacher 75.61, student from scratch 73.26): kd 75.2, hint 73.3, at 73.4, sp 74.3, cc 73.1,
vid 73.6, rkd 73.7, pkt 75.2, nst 73.7, svd 73.5 % top-1. Needs the tfds ``cifar100`` dataset
prepared in ``data.data_dir`` and a GPU/TPU; not reproduced here yet.
"""
from jka.recipes.distill import cifar100_zoo


def get_config(method: str = "kd"):
    return cifar100_zoo(method)
