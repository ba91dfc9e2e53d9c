"""Distil a CIFAR-10 ResNet-34 teacher into a ResNet-18 student with ``0.9 kd(T=4) + 0.1 CE``.

The teacher is an exported model directory: a jka run (`runs/c10_resnet34`) or a PyTorch
checkpoint converted with `jka convert cifar_resnet34 teacher.pth runs/c10_resnet34 --num-classes 10`.

    jka train configs/cifar/kd_resnet34_resnet18.py \
        --workdir runs/c10_kd_r34_r18
"""
from jka import recipes

EPOCHS = 200
TRAIN_SIZE = 50_000


def get_config():
    cfg = recipes.base_config(algorithm="kd")
    recipes.cifar_data(cfg, "cifar10", 128)
    cfg.model.name = "cifar_resnet18"
    # Relative teacher workdirs are resolved against this run's --workdir: a sibling run.
    cfg.teachers = [dict(workdir="../c10_resnet34", classes=list(range(10)))]
    cfg.loss.update(T=4.0, alpha=0.9, beta=0.1)
    cfg.optim.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine")
    cfg.train.steps = EPOCHS * TRAIN_SIZE // cfg.data.batch_size
    cfg.train.update(log_every=100, eval_every=2000, checkpoint_every=2000, dtype="bfloat16")
    return cfg
