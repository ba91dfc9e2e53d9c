"""NetGraft's reference runs on CIFAR-10 / CIFAR-100: a VGG16 teacher (no BN in the features), the
``vgg16_graft`` student (blocks 4–5 at 256 channels + 1×1 adapters), N unlabelled training images per
class (fixed seed, ``netgraft.n_per_class``, default 5), batch 64·N/10, random crop + flip, Adam 1e-3
at a constant rate, block grafting (2,000 steps per block) then net grafting (3,000 per chain). What
follows the reference code (zju-vipa/NetGraft) and what jka cannot express (which parts are grafted,
per-part epochs and learning rates) is listed in configs/distill/cifar_netgraft_reference.toml.

    jka train configs/distill/cifar_netgraft.py --workdir runs/cifar10_netgraft
    jka train configs/distill/cifar_netgraft.py:dataset=cifar100 netgraft.n_per_class=1 --workdir runs/c100_ng_n1

The teacher is trained from labels in WORKDIR/teacher first unless ``teachers.0.workdir`` points at an
exported VGG16 (e.g. converted from PyTorch). The paper reports 90.74 / 92.88 / 92.89 % (CIFAR-10)
and 64.22 / 68.16 / 68.86 % (CIFAR-100) for N = 1 / 5 / 10. No model selection on the test split:
every phase keeps its last step. Needs the dataset prepared for tfds and a GPU; not reproduced yet.
"""
from jka.recipes.distill import cifar_netgraft


def get_config(dataset: str = "cifar10"):
    return cifar_netgraft(dataset)
