"""NetGraft reference run (SPEC §4.3) on CIFAR-10: VGG16 teacher (no BN in the features), the
``vgg16_graft`` student (blocks 4–5 at 256 channels + 1×1 adapters), N unlabelled training images
per class (fixed seed), batch 64·N/10, random crop + flip, block grafting then net grafting.

    jka train configs/distill/cifar10_netgraft.py --workdir /tmp/cifar10_netgraft
    jka train configs/distill/cifar10_netgraft.py netgraft.n_per_class=1 --workdir /tmp/cifar10_netgraft_n1

Needs CIFAR-10 prepared for tfds (``data.data_dir=DIR``) and a GPU. The teacher is trained from labels
in WORKDIR/teacher first unless ``teachers.0.workdir`` points at an exported VGG16 (e.g. one
converted from PyTorch). The paper reports 90.74 / 92.88 / 92.89 % for N = 1 / 5 / 10.
No model selection on the test split: every phase keeps its last step.
"""
from jka.recipes import base_config

DATASET = "cifar10"


def teacher_config(dataset: str = DATASET):
    cfg = base_config(algorithm="supervised")
    cfg.data.name = dataset
    cfg.data.image_size = 32
    cfg.data.batch_size = 128
    cfg.data.augment.crop_pad = 4
    cfg.data.augment.flip = True
    cfg.model.name = "vgg16_teacher"
    cfg.model.kwargs = dict(width=1.0)
    cfg.optim.lr = 0.05
    cfg.optim.weight_decay = 5e-4
    cfg.optim.schedule = "cosine"
    cfg.train.steps = 200 * (50_000 // 128)
    return cfg


def get_config(dataset: str = DATASET):
    """``dataset`` is a tfds name: cifar10 here, cifar100 from cifar100_netgraft.py."""
    cfg = base_config(algorithm="netgraft")
    cfg.data.name = dataset
    cfg.data.image_size = 32
    cfg.data.augment.crop_pad = 4
    cfg.data.augment.flip = True
    cfg.model.name = "vgg16_graft"
    cfg.model.kwargs = dict(width=1.0)
    cfg.teachers = [dict(workdir="teacher", config=teacher_config(dataset))]
    cfg.optim.name = "adam"
    cfg.optim.lr = 1e-3
    cfg.optim.weight_decay = 0.0
    cfg.optim.schedule = "cosine"
    cfg.netgraft = dict(n_per_class=5, sample_seed=0, batch_size=None, block_steps=2000, chain_steps=3000,
                        eval_batch_size=500, eval_every_phase=True, start=0, stop=5, init_from=None)
    return cfg
