"""The distillation zoo's reference run: WRN-40-2 → WRN-16-2 on CIFAR-100 with any method of the zoo,
with the settings of the zju-vipa/KamalEngine run behind the numbers below (value by value, with
sources, in configs/distill/cifar100_reference.toml). SGD 0.05, momentum 0.9, wd 5e-4, batch 64,
240 epochs of 782 steps (187,680), cosine per step, T = 4; random crop (pad 4) + flip. Loss weights per
method: kd is 0.9 KD + 0.1 CE. Every other method is CE + its term alone, without KD, at γ = hint 100,
at 1000, sp 3000, cc 0.02, vid 1, rkd 1, pkt 30000, nst 50, svd 10 (fsp and ft keep jka's defaults).

    jka train configs/distill/cifar100.py:method=at teachers.0.workdir=/abs/path/runs/c100_wrn40_2 \
        --workdir runs/c100_at_wrn40_2_wrn16_2

The teacher is an exported model directory: a jka run or the RepDistiller ``wrn_40_2`` checkpoint
converted with ``jka convert wrn40_2 ckpt_epoch_240.pth runs/c100_wrn40_2 --num-classes 100`` (the
default teacher workdir ``../c100_wrn40_2`` is a sibling of ``--workdir``). KamalEngine's table
reports (teacher 75.61, student from scratch 73.26, RepDistiller's figures): kd 75.2, hint 73.3, at
73.4, sp 74.3, cc 73.1, vid 73.6, rkd 73.7, pkt 75.2, nst 73.7, svd 73.5 % top-1. Needs the tfds
``cifar100`` dataset prepared in ``data.data_dir`` and a GPU/TPU; not reproduced here yet.
"""
from jka.recipes.distill import cifar100_zoo


def get_config(method: str = "kd"):
    return cifar100_zoo(method)
