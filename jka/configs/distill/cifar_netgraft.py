"""NetGraft's reference runs on CIFAR-10 / CIFAR-100: a VGG16 teacher (no BN in the features), the
``vgg16_graft`` student (blocks 4–5 at 256 channels + 1×1 adapters), N unlabelled training images per
class (fixed seed, ``netgraft.n_per_class``, default 5), batch 64·N/10, random crop + flip, Adam 1e-3
at a constant rate, block grafting (2,000 steps per block) then net grafting (3,000 per chain). What
follows the reference code (zju-vipa/NetGraft) and what jka cannot express (which parts are grafted,
per-part epochs and learning rates) is listed in jka/configs/distill/cifar_netgraft_reference.toml.

    jka train distill/cifar_netgraft --workdir runs/cifar10_netgraft
    jka train distill/cifar_netgraft:dataset=cifar100 netgraft.n_per_class=1 --workdir runs/c100_ng_n1

The teacher is trained from labels in WORKDIR/teacher first unless ``teachers.0.workdir`` points at an
exported VGG16 (e.g. converted from PyTorch). The paper reports 90.74 / 92.88 / 92.89 % (CIFAR-10)
and 64.22 / 68.16 / 68.86 % (CIFAR-100) for N = 1 / 5 / 10. No model selection on the test split:
every phase keeps its last step. Needs the dataset prepared for tfds and a GPU; not reproduced yet.
"""
from jka.configs.common import cifar_data, config

CHOICES = {"dataset": ["cifar10", "cifar100"]}


def get_config(dataset: str = "cifar10"):
    teacher = cifar_data(config("supervised"), dataset, 128)
    teacher.model.name = "vgg16_teacher"
    teacher.model.kwargs = dict(width=1.0)
    teacher.optim.update(lr=0.05, weight_decay=5e-4, schedule="cosine")
    teacher.train.steps = 200 * (50_000 // 128)

    cfg = config("netgraft", netgraft=dict(eval_batch_size=500))
    cfg.data.name = dataset
    cfg.data.image_size = 32
    cfg.data.augment.crop_pad = 4
    cfg.data.augment.flip = True
    cfg.model.name = "vgg16_graft"
    cfg.model.kwargs = dict(width=1.0)
    cfg.teachers = [dict(workdir="teacher", config=teacher)]
    # Adam at its default betas with no scheduler, as both reference stages run it; the reference's lrs
    # (per block, per adapter, per stage, scaled by N/10) have no single counterpart: 1e-3 is jka's.
    cfg.optim.update(name="adam", lr=1e-3, b1=0.9, b2=0.999, weight_decay=0.0, schedule="constant")
    return cfg
