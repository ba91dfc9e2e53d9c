"""Small configs shared by the core tests."""
from jka import recipes


def tiny_teacher(classes=None, steps=30, **train):
    cfg = recipes.digits_teacher(classes, steps)
    cfg.model.kwargs = {"width": 0.25}
    cfg.data.batch_size = 32
    cfg.train.update({"progress": False, "log_every": 10, "mesh": {"data": 1, "model": 1}, **train})
    return cfg


def tiny_kd(steps=20, teacher_steps=30, **train):
    specs = [dict(workdir=f"teacher_{n}", classes=list(c), config=tiny_teacher(c, teacher_steps))
             for n, c in zip("ab", recipes.DIGITS_HALVES)]
    cfg = recipes.digits_kd_student(specs, steps=steps)
    cfg.model.kwargs = {"width": 0.25}
    cfg.data.batch_size = 32
    cfg.train.update({"progress": False, "log_every": 5, "mesh": {"data": 1, "model": 1}, **train})
    return cfg
