"""DeepInversion on CIFAR-10, pair wrn40_2_wrn16_1 (SPEC §5, §7), no CIFAR image seen by the synthesis or the student.

The teacher is a converted checkpoint: an exported model directory at ../c10_<teacher arch> next
to the run's workdir (e.g. `jka convert wrn40_2 teacher.pth runs/c10_wrn40_2 --num-classes 10`),
or set teachers.0.workdir=PATH. The real CIFAR-10 test split (tfds) is used for evaluation only.

    jka train configs/datafree/cifar10_deepinv_wrn40_2_wrn16_1.py --workdir runs/c10_deepinv_wrn40_2_wrn16_1

Should approach the DeepInversion column of SPEC §7 for this pair on a GPU.
"""
from jka.algorithms.deepinversion import cifar10_inversion_config


def get_config():
    return cifar10_inversion_config("deepinversion", "wrn40_2_wrn16_1")
