"""CIFAR configs: a teacher from labels and classic KD (``0.9 kd(T=4) + 0.1 CE``)."""
from __future__ import annotations

from jka.recipes import base_config, cifar_data

EPOCHS = 200
TRAIN_SIZE = 50_000


def cifar_teacher(arch: str = "cifar_resnet34", dataset: str = "cifar10"):
    """SGD 0.1, momentum 0.9, wd 5e-4, batch 128, 200 epochs cosine, crop pad 4 + flip, bf16."""
    cfg = base_config()
    cifar_data(cfg, dataset, 128)
    cfg.model.name = arch
    cfg.optim.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine")
    cfg.train.steps = EPOCHS * TRAIN_SIZE // cfg.data.batch_size
    cfg.train.update(log_every=100, eval_every=2000, checkpoint_every=2000, dtype="bfloat16")
    return cfg


def cifar_kd(teacher: str = "cifar_resnet34", student: str = "cifar_resnet18", dataset: str = "cifar10"):
    """The teacher is an exported model at ``../c10_<teacher without cifar_>`` next to the run's
    workdir (a jka run or a converted PyTorch checkpoint)."""
    cfg = cifar_teacher(student, dataset)
    cfg.algorithm = "kd"
    n = 100 if dataset == "cifar100" else 10
    cfg.teachers = [dict(workdir=f"../c10_{teacher.replace('cifar_', '')}", classes=list(range(n)), arch=teacher)]
    cfg.loss.update(T=4.0, alpha=0.9, beta=0.1)
    return cfg
