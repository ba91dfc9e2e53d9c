"""Distil a CIFAR-10 ResNet-34 teacher into a ResNet-18 student with ``0.9 kd(T=4) + 0.1 CE``.

The teacher is an exported model directory next to the run's workdir (``../c10_resnet34``): a jka
run of configs/cifar/teacher.py or a PyTorch checkpoint converted with
`jka convert cifar_resnet34 teacher.pth runs/c10_resnet34 --num-classes 10`.

    jka train configs/cifar/kd.py --workdir runs/c10_kd_r34_r18

Also the step `python -m benchmarks.throughput --task kd` times against PyTorch.
"""
from jka.recipes.cifar import cifar_kd


def get_config(teacher: str = "cifar_resnet34", student: str = "cifar_resnet18"):
    return cifar_kd(teacher, student)
