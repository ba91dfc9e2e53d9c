"""ZSKT on CIFAR-10, resnet34 → resnet18 (SPEC §5, §7 table; PyTorch original: see SPEC §7).

The teacher is a converted checkpoint: `teachers.0.workdir` must hold an exported model
(`model/model.json` + `variables.msgpack`, e.g. converted from the KAmalEngine PyTorch weights).
No CIFAR-10 training image is used; the tfds `cifar10` test split only evaluates the student.

Run: `jka train configs/datafree/cifar10_zskt_resnet34_resnet18.py teachers.0.workdir=/path/to/teacher --workdir DIR`
(one-stage for ZSKT/DFAD: add `datafree.one_stage=True`).
"""
from jka.algorithms.dafl import cifar10_datafree


def get_config():
    return cifar10_datafree("zskt", "resnet34_resnet18", kd_steps=10, g_steps=1)
