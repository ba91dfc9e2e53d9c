"""SPEC §4.1 reference run: WRN-40-2 → WRN-16-2 on CIFAR-100 with any method of the zoo.

SGD 0.05, momentum 0.9, wd 5e-4, batch 64, 240 epochs, cosine, T = 4; random crop (pad 4) + flip.
The teacher is an exported model directory: a jka run or the RepDistiller ``wrn_40_2`` checkpoint
converted with ``jka convert wrn40_2 ckpt_epoch_240.pth runs/c100_wrn40_2 --num-classes 100``.

    jka train configs/distill/cifar100_wrn40_2_wrn16_2.py distill.method=at \
        teachers.0.workdir=/abs/path/runs/c100_wrn40_2 --workdir runs/c100_at_wrn40_2_wrn16_2

(the default teacher workdir ``../c100_wrn40_2`` is a sibling of ``--workdir``). SPEC §7 (PyTorch
originals, teacher 75.61, student from scratch 73.26): kd 75.2, hint 73.3, at 73.4, sp 74.3,
cc 73.1, vid 73.6, rkd 73.7, pkt 75.2, nst 73.7, svd 73.5 % top-1. Needs the tfds ``cifar100``
dataset prepared in ``data.data_dir`` and a GPU/TPU (about 180k steps).
"""
from jka import recipes

EPOCHS = 240
TRAIN_SIZE = 50_000


def get_config(method: str = "kd"):
    cfg = recipes.base_config(algorithm="distill")
    recipes.cifar_data(cfg, "cifar100", 64)
    cfg.model.name = "wrn16_2"
    cfg.teachers = [dict(workdir="../c100_wrn40_2", classes=list(range(100)))]
    cfg.loss.T = 4.0
    cfg.distill = dict(method=method, alpha=None, beta=None, gamma=None, student_stages=None, teacher_stages=None)
    cfg.optim.update(name="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine")
    cfg.train.steps = EPOCHS * TRAIN_SIZE // cfg.data.batch_size
    cfg.train.update(log_every=200, eval_every=5000, checkpoint_every=5000)
    return cfg
