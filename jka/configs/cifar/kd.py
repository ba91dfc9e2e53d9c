"""Distil a CIFAR-10 ResNet-34 teacher into a ResNet-18 student with ``0.9 kd(T=4) + 0.1 CE``.

The teacher is an exported model directory next to the run's workdir (``../c10_resnet34``): a jka
run of cifar/teacher or a PyTorch checkpoint converted with
`jka convert cifar_resnet34 teacher.pth runs/c10_resnet34 --num-classes 10`.

    jka train cifar/kd --workdir runs/c10_kd_r34_r18

Also the step `python -m benchmarks.throughput --task kd` times against PyTorch.
"""
from jka.configs.cifar import teacher as cifar_teacher


def get_config(teacher: str = "cifar_resnet34", student: str = "cifar_resnet18", dataset: str = "cifar10"):
    cfg = cifar_teacher.get_config(student, dataset)
    cfg.algorithm = "kd"
    cfg.kd = dict(T=4.0, alpha=0.9, beta=0.1)
    n = 100 if dataset == "cifar100" else 10
    cfg.teachers = [dict(workdir=f"../c10_{teacher.replace('cifar_', '')}", classes=list(range(n)), arch=teacher)]
    return cfg
