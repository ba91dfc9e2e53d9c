"""NetGraft reference run (SPEC §4.3) on CIFAR-100: VGG16 teacher (no BN in the features), the
``vgg16_graft`` student (blocks 4–5 at 256 channels + 1×1 adapters), N unlabelled training images
per class (fixed seed), batch 64·N/10, random crop + flip, block grafting then net grafting.

    jka train configs/distill/cifar100_netgraft.py --workdir /tmp/cifar100_netgraft
    jka train configs/distill/cifar100_netgraft.py netgraft.n_per_class=1 --workdir /tmp/cifar100_netgraft_n1

Needs CIFAR-100 prepared for tfds (``data.data_dir=DIR``) and a GPU. The teacher is trained from labels
in WORKDIR/teacher first unless ``teachers.0.workdir`` points at an exported VGG16 (e.g. one
converted from PyTorch). The paper reports 64.22 / 68.16 / 68.86 % for N = 1 / 5 / 10.
No model selection on the test split: every phase keeps its last step.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "cifar10_netgraft", os.path.join(os.path.dirname(os.path.abspath(__file__)), "cifar10_netgraft.py"))
_cifar10 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cifar10)


def get_config():
    """The CIFAR-10 recipe with CIFAR-100's data and 100 classes."""
    return _cifar10.get_config("cifar100")
