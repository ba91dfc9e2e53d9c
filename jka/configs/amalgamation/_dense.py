"""What the task-branching configs share (scenes, NYUv2): the dense teachers and the branchy student."""
from jka.configs.common import config


def dense_teacher(kind: str, steps: int, width: float, lr: float = 1e-3):
    """A SegNet-VGG16-BN (``width`` × channels) trained from labels for one dense task."""
    cfg = config("dense_supervised", dense_supervised=dict(kind=kind, depth_loss="l1"))
    cfg.model.update(name="segnet", kwargs={"width": float(width)})
    cfg.optim.update(name="adam", lr=lr, weight_decay=0.0)
    cfg.train.update(steps=steps, log_every=100)
    return cfg


def branching_student(specs, steps: int, width: float, lr: float = 1e-3):
    """The branchy SegNet student of ``specs`` (one teacher per task), no labels."""
    cfg = config("branching")
    cfg.teachers = specs
    cfg.model.update(name="branchy_segnet", kwargs={"width": float(width)})
    cfg.optim.update(name="adam", lr=lr, weight_decay=0.0)
    cfg.train.update(steps=steps, log_every=100)
    return cfg
