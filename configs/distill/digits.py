"""Single-teacher distillation zoo on digits (SPEC §4.1): a width-2 small_cnn teacher (trained
first, from labels) → a width-0.5 small_cnn student, with any method of the zoo.

    jka train configs/distill/digits.py distill.method=at --workdir /tmp/d_at

Methods: kd, hint, at, sp, cc, vid, rkd, pkt, nst, svd, fsp, ft (``distill.alpha/beta/gamma``
override the SPEC default weights). The teacher is trained in ``WORKDIR/teacher`` unless
``teachers.0.workdir=/abs/path`` points at a shared one. Baseline with the same budget:
``jka train configs/distill/digits.py algorithm=supervised --workdir /tmp/d_scratch``.
Every method should reach ≥ 0.95 test accuracy (the README table lists the measured ones).
"""
from jka import recipes

TEACHER_STEPS = 600
STUDENT_STEPS = 400


def distill_section(method: str = "kd"):
    return dict(method=method, alpha=None, beta=None, gamma=None, student_stages=None, teacher_stages=None)


def get_config(method: str = "kd"):
    cfg = recipes.base_config(algorithm="distill")
    teacher = recipes.digits_teacher(None, TEACHER_STEPS, "small_cnn")
    teacher.model.kwargs = dict(width=2.0)
    teacher.train.progress = False
    cfg.teachers = [dict(workdir="teacher", config=teacher)]
    cfg.model.kwargs = dict(width=0.5)
    cfg.data.augment.crop_pad = 1
    cfg.loss.T = 4.0
    cfg.distill = distill_section(method)
    cfg.train.steps = STUDENT_STEPS
    cfg.train.log_every = 100
    return cfg
