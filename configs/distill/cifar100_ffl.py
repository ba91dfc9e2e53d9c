"""FFL's reference run: CIFAR-100 ResNet-32 with a shared trunk up to stage 2 and two private stage-3
branches, fused by the FFL fusion module.

    jka train configs/distill/cifar100_ffl.py --workdir runs/cifar100_ffl_resnet32

SGD 0.1 Nesterov, weight decay 1e-4 (fusion module 1e-5), batch 128, 300 epochs, ×0.1 at epochs 150
and 225, T = 3, ramp R = 80 epochs. The FFL paper reports each ResNet-32 branch clearly above a
ResNet-32 trained alone (about 70–71 % vs 69 %) and the fused classifier above the branches. Needs
CIFAR-100 prepared for tfds (``data.data_dir=DIR``) and a GPU; not reproduced here yet.
"""
from jka.recipes.distill import cifar100_ffl


def get_config():
    return cifar100_ffl()
