"""DeiT's distillation token on the digits: a tiny ViT student (2x2 patches of the 8x8 digits, 16
patches + a class and a distillation token, width 64, 4 blocks of 4 heads) learns the labels through
its class head and a width-2 small_cnn teacher (trained first from labels into WORKDIR/teacher)
through its distillation head; it predicts with the mean of the two heads.

    jka train digits/deit --workdir runs/deit_digits              # hard distillation (DeiT's default)
    jka train digits/deit:deit=soft --workdir runs/deit_soft      # soft: kd(z_dist, t, T=3), λ = 0.1
    jka train digits/deit:deit=scratch --workdir runs/vit_scratch # the same ViT from labels alone

``hard``: ``0.5 CE(z_cls, y) + 0.5 CE(z_dist, argmax t)``; ``soft``: ``0.9 CE(z_cls, y) + 0.1 kd(z_dist, t, 3)``
(the paper's weights). AdamW (lr 1e-3, weight decay 0.05, 100 warm-up steps, cosine), batch 64, shifts of
one pixel (crop_pad 1), 1500 steps.

Measured on the 540 held-out digits (teacher 0.9963; summary.json eval.accuracy, the mean of the two
heads): hard 0.9500, soft 0.9648, scratch 0.9259 (the same ViT from labels alone). Without the shifts
(data.augment.crop_pad=0): hard 0.9037, scratch 0.8907 — a ViT this small overfits 1,257 digits.
"""
from jka.configs.common import config, digits_teacher
from jka.errors import unknown_choice

CHOICES = {"deit": ["hard", "soft", "scratch"]}
STUDENT = dict(img_size=8, patch_size=2, embed_dim=64, depth=4, num_heads=4, dist_token=True)


def get_config(deit: str = "hard"):
    if deit not in CHOICES["deit"]:
        raise unknown_choice("deit (digits/deit:deit=...)", deit, CHOICES["deit"])
    if deit == "scratch":  # the same student from labels alone (its two heads both learn the labels)
        cfg = config("supervised")
    else:
        weights = dict(alpha=0.5, beta=0.5) if deit == "hard" else dict(alpha=0.1, beta=0.9, T=3.0)
        cfg = config("kd", kd=dict(deit=deit, **weights))
        teacher = digits_teacher(None, 600, width=2.0)
        teacher.train.progress = False
        cfg.teachers = [dict(workdir="teacher", config=teacher)]
    cfg.data.augment.crop_pad = 1  # a ViT has no built-in translation invariance (docstring)
    cfg.model.name = "vit"
    cfg.model.kwargs = dict(STUDENT)
    cfg.optim.name = "adamw"
    cfg.optim.lr = 1e-3
    cfg.optim.weight_decay = 0.05
    cfg.optim.warmup_steps = 100
    cfg.train.steps = 1500
    cfg.train.log_every = 250
    return cfg
