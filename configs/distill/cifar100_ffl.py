"""FFL's reference run: CIFAR-100 ResNet-32 with a shared trunk up to stage 2 and two private stage-3
branches, fused by the FFL fusion module.

    jka train configs/distill/cifar100_ffl.py --workdir runs/cifar100_ffl_resnet32

SGD 0.1 Nesterov, weight decay 1e-4 (fusion module 1e-5), batch 128, 301 epochs of 391 steps (117,691;
the reference's loop runs epochs 0 to ``--epoch 300`` inclusive), ×0.1 at epochs 150 and 225, T = 3,
ramp R = 80 epochs: FFL-pytorch's train_FFL.py value by value, with sources, in
configs/distill/cifar100_ffl_reference.toml. The FFL paper reports each ResNet-32 branch clearly above
a ResNet-32 trained alone (about 70–71 % vs 69 %) and the fused classifier above the branches. Needs
CIFAR-100 prepared for tfds (``data.data_dir=DIR``) and a GPU; not reproduced here yet.
"""
from jka.recipes.distill import cifar100_ffl


def get_config():
    return cifar100_ffl()
