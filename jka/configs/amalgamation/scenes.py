"""Task branching, "Student Becoming the Master", on the embedded procedural scenes (32×32, five
classes: background + four shapes, depth 1–10 m), and the dense teachers it learns from.

    jka train amalgamation/scenes --workdir runs/scenes_branching
    jka eval  amalgamation/scenes --workdir runs/scenes_branching
    jka train amalgamation/scenes:part=teacher_seg --workdir runs/scenes_teacher_seg
    jka train amalgamation/scenes:part=teacher_depth --workdir runs/scenes_teacher_depth

Variants (``part=``):
- ``branching`` (default): the two teachers below are trained first (WORKDIR/teacher_seg,
  WORKDIR/teacher_depth) when empty; then one branchy SegNet student (width 0.125, like the
  teachers) learns both tasks from the teachers alone, no labels: phase 1 (WORKDIR/search, 2,400
  steps, half the run as in the paper) draws a random branch point per task every step, phase 2
  picks per task the branch point of lowest mimic loss (WORKDIR/branch_points.json), phase 3
  (WORKDIR, 2,400 steps) trains with those points fixed. Measured (2-core CPU, jax 0.10.2; 52 min on a busy machine):
  points seg 0, depth 5; teachers mIoU 0.235 / RMSE 1.209; student mIoU 0.230 (eval.miou_ratio
  0.976), RMSE 1.188 (eval.rmse_ratio 0.983). ``branching.tolerance=0.02`` (jka's variant: the deepest
  point within 2 % of the lowest loss) would take seg 1 here.
- ``teacher_seg``: SegNet-VGG16-BN at width 0.125 from labels (cross-entropy, label 255 ignored),
  Adam 2e-3, 1,200 steps of 32, flips; eval.miou, eval.pixel_acc on 400 held-out scenes.
- ``teacher_depth``: the same with a one-channel head (metres, L1 over valid pixels); eval.rmse,
  eval.abs_rel, eval.delta1..3.

The segmentation teacher is weak (all background scores 0.73 pixel accuracy): at 32 px SegNet's five
pools leave a 1×1 bottleneck.
"""
from jka.configs.amalgamation._dense import branching_student, dense_teacher
from jka.errors import unknown_choice

WIDTH = 0.125  # SegNet channels ×0.125 (8..64): small enough for a CPU


def scenes_data(cfg, train_size: int = 2000, test_size: int = 400, num_classes: int = 5, batch_size: int = 32):
    """The procedural scenes (jka.data.scenes) at 32 px, one fixed seed for teachers and student."""
    cfg.data.update(name="scenes", image_size=32, num_classes=num_classes, train_size=train_size,
                    test_size=test_size, scene_seed=0, batch_size=batch_size)
    cfg.data.augment.flip = True
    return cfg


def scenes_teacher(kind: str, steps: int = 1200):
    return scenes_data(dense_teacher(kind, steps, WIDTH, lr=2e-3))


def scenes_branching(steps: int = 4800, teacher_steps: int = 1200):
    """Segmentation + depth teachers on the scenes (trained first into WORKDIR/teacher_*), then the
    branchy student of the same width from both."""
    specs = [dict(workdir=f"teacher_{task}", task=task, kind=kind, config=scenes_teacher(kind, teacher_steps))
             for task, kind in (("seg", "segmentation"), ("depth", "depth"))]
    return scenes_data(branching_student(specs, steps, WIDTH))


KINDS = {"teacher_seg": "segmentation", "teacher_depth": "depth"}
CHOICES = {"part": ["branching", *KINDS]}


def get_config(part: str = "branching"):
    if part == "branching":
        return scenes_branching()
    if part not in KINDS:
        raise unknown_choice("part (amalgamation/scenes:part=...)", part, CHOICES["part"])
    return scenes_teacher(KINDS[part])
