"""Classic single-teacher distillation with labels: ``α kd(s, t, T) + β CE(s, y)``.

The teacher is a full-width small_cnn over all ten digits (trained first), the student a half-width
one.

    jka train configs/digits/kd_single_teacher.py --workdir runs/kd_single
"""
from jka import recipes


def get_config():
    cfg = recipes.digits_kd_student(
        [dict(workdir="teacher", config=recipes.digits_teacher(None, 600))], steps=600)
    cfg.model.kwargs = {"width": 0.5}
    cfg.loss.alpha, cfg.loss.beta, cfg.loss.T = 0.9, 0.1, 4.0
    return cfg
