"""Task branching, "Student Becoming the Master", on the embedded procedural scenes (32×32, five
classes: background + four shapes, depth 1–10 m), and the dense teachers it learns from.

    jka train configs/amalgamation/scenes.py --workdir runs/scenes_branching
    jka eval  configs/amalgamation/scenes.py --workdir runs/scenes_branching
    jka train configs/amalgamation/scenes.py:part=teacher_seg --workdir runs/scenes_teacher_seg
    jka train configs/amalgamation/scenes.py:part=teacher_depth --workdir runs/scenes_teacher_depth

Variants (``part=``):
- ``branching`` (default): the two teachers below are trained first (WORKDIR/teacher_seg,
  WORKDIR/teacher_depth) when empty; then one branchy SegNet student (width 0.125, like the
  teachers) learns both tasks from the teachers alone, no labels: phase 1 (WORKDIR/search, 2,400
  steps, half the run as in the paper) draws a random branch point per task every step, phase 2
  picks per task the branch point of lowest mimic loss (WORKDIR/branch_points.json), phase 3
  (WORKDIR, 2,400 steps) trains with those points fixed. Measured (2-core CPU, jax 0.10.2; 52 min on a busy machine):
  points seg 0, depth 5; teachers mIoU 0.235 / RMSE 1.209; student mIoU 0.230 (eval.miou_ratio
  0.976), RMSE 1.188 (eval.rmse_ratio 0.983). ``branch.tolerance=0.02`` (jka's variant: the deepest
  point within 2 % of the lowest loss) would take seg 1 here.
- ``teacher_seg``: SegNet-VGG16-BN at width 0.125 from labels (cross-entropy, label 255 ignored),
  Adam 2e-3, 1,200 steps of 32, flips; eval.miou, eval.pixel_acc on 400 held-out scenes.
- ``teacher_depth``: the same with a one-channel head (metres, L1 over valid pixels); eval.rmse,
  eval.abs_rel, eval.delta1..3.

The segmentation teacher is weak (all background scores 0.73 pixel accuracy): at 32 px SegNet's five
pools leave a 1×1 bottleneck.
"""
from jka.errors import unknown_choice
from jka.recipes.amalgamation import scenes_branching, scenes_teacher


VARIANTS = {"branching": lambda: scenes_branching(steps=4800), "teacher_seg": lambda: scenes_teacher("segmentation"),
            "teacher_depth": lambda: scenes_teacher("depth")}


def get_config(part: str = "branching"):
    if part not in VARIANTS:
        raise unknown_choice("part (configs/amalgamation/scenes.py:part=...)", part, VARIANTS)
    return VARIANTS[part]()
