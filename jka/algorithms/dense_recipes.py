"""Config builders for dense tasks and task branching (SPEC §3.4), shared by configs/amalgamation/
(scenes_teacher_seg.py, scenes_teacher_depth.py, scenes_branching.py, nyuv2_branching.py) and the
tests. No algorithm lives here."""
from __future__ import annotations

import ml_collections

from jka.algorithms.branching import branch_section
from jka.recipes import base_config

SCENES_WIDTH = 0.125  # SegNet channels ×0.125 (8..64): small enough for a CPU


def scenes_data(cfg, train_size: int = 2000, test_size: int = 400, num_classes: int = 5, batch_size: int = 32):
    """The procedural scenes (jka.data.scenes) at 32 px, one fixed seed for teachers and student."""
    cfg.data = ml_collections.ConfigDict(dict(
        name="scenes", image_size=32, num_classes=num_classes, train_size=train_size, test_size=test_size,
        scene_seed=0, batch_size=batch_size, classes=None, data_dir=None, augment=dict(crop_pad=0, flip=True)))
    return cfg


def nyuv2_data(cfg, data_dir: str = "/data/nyuv2", batch_size: int = 8):
    """NYUv2 prepared as data_dir/{train,test}.npz (jka.data.scenes documents the layout), 13 classes."""
    cfg.data = ml_collections.ConfigDict(dict(
        name="nyuv2", num_classes=13, data_dir=data_dir, batch_size=batch_size, classes=None,
        augment=dict(crop_pad=0, flip=True)))
    return cfg


def dense_teacher(kind: str, steps: int, width: float, lr: float = 1e-3) -> ml_collections.ConfigDict:
    """A SegNet-VGG16-BN (``width`` × channels) trained from labels for one dense task."""
    cfg = base_config(algorithm="dense_supervised")
    cfg.model.name = "segnet"
    cfg.model.kwargs = {"width": float(width)}
    cfg.dense = ml_collections.ConfigDict(dict(kind=kind, depth_loss="l1"))
    cfg.optim.name = "adam"
    cfg.optim.lr = lr
    cfg.optim.weight_decay = 0.0
    cfg.train.steps = steps
    cfg.train.log_every = 100
    return cfg


def scenes_teacher(kind: str, steps: int = 1200, width: float = SCENES_WIDTH, **data) -> ml_collections.ConfigDict:
    return scenes_data(dense_teacher(kind, steps, width, lr=2e-3), **data)


def branching_student(teacher_specs, steps: int, width: float, lr: float = 1e-3, **branch):
    """The branchy SegNet student of ``teacher_specs`` (one per task), no labels."""
    cfg = base_config(algorithm="branching")
    cfg.teachers = teacher_specs
    cfg.model.name = "branchy_segnet"
    cfg.model.kwargs = {"width": float(width)}
    cfg.optim.name = "adam"
    cfg.optim.lr = lr
    cfg.optim.weight_decay = 0.0
    cfg.train.steps = steps
    cfg.train.log_every = 100
    cfg.branch = branch_section(**branch)
    return cfg


def scenes_branching(steps: int = 1600, teacher_steps: int = 1200, width: float = SCENES_WIDTH,
                     **data) -> ml_collections.ConfigDict:
    """Segmentation + depth teachers on the scenes (trained first into WORKDIR/teacher_*), then the
    branchy student of the same width from both."""
    specs = [dict(workdir="teacher_seg", task="seg", kind="segmentation",
                  config=scenes_teacher("segmentation", teacher_steps, width, **data)),
             dict(workdir="teacher_depth", task="depth", kind="depth",
                  config=scenes_teacher("depth", teacher_steps, width, **data))]
    return scenes_data(branching_student(specs, steps, width), **data)


def nyuv2_branching(data_dir: str = "/data/nyuv2", teachers_root: str = "/data/teachers", steps: int = 40000,
                    teacher_steps: int = 40000) -> ml_collections.ConfigDict:
    """The paper's setting: full SegNet-VGG16-BN teachers (13-class segmentation, depth) on NYUv2,
    trained first into ``teachers_root`` when missing, and a full-width branchy student."""
    specs = [dict(workdir=f"{teachers_root}/nyuv2_segnet_seg", task="seg", kind="segmentation",
                  config=nyuv2_data(dense_teacher("segmentation", teacher_steps, 1.0, lr=1e-4), data_dir)),
             dict(workdir=f"{teachers_root}/nyuv2_segnet_depth", task="depth", kind="depth",
                  config=nyuv2_data(dense_teacher("depth", teacher_steps, 1.0, lr=1e-4), data_dir))]
    cfg = nyuv2_data(branching_student(specs, steps, 1.0, lr=1e-4), data_dir)
    cfg.train.eval_every = 5000
    cfg.train.checkpoint_every = 2000
    return cfg
