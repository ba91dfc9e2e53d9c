"""Task branching, "Student Becoming the Master" (SPEC §3.4), on the embedded procedural scenes.

Two teachers are trained first from labels when WORKDIR/teacher_seg and WORKDIR/teacher_depth have
no exported model (the configs of scenes_teacher_seg.py and scenes_teacher_depth.py). Then one
branchy SegNet student (width 0.125, like the teachers) learns both tasks from the teachers alone,
no labels: phase 1 (WORKDIR/search, 800 steps) draws a random branch point per task every step,
phase 2 picks per task the deepest branch point within 2% of its lowest mimic loss
(WORKDIR/branch_points.json), phase 3 (WORKDIR, 4,000 steps) trains with those points fixed.

    jka train configs/amalgamation/scenes_branching.py --workdir /tmp/scenes_branching
    jka eval configs/amalgamation/scenes_branching.py --workdir /tmp/scenes_branching

summary.json: eval.seg_miou / eval.teacher_seg_miou and eval.depth_rmse / eval.teacher_depth_rmse
(plus pixel acc, abs-rel, δ), eval.miou_ratio (student / teacher, should be ≥ 0.95) and
eval.rmse_ratio (should be ≤ 1.05), the selected branch_points and every branch_point_losses.

Measured (2-core CPU, teachers 1,200 steps each): teachers mIoU 0.227 / RMSE 1.176; both tasks branch
at point 1; student mIoU 0.219 (miou_ratio 0.965), RMSE 1.181 (rmse_ratio 1.003). With 800 phase-3
steps the ratios were 0.951 / 1.090, with 2,000 0.961 / 1.051. The segmentation teacher is weak (all
background scores 0.73 pixel accuracy): at 32 px SegNet's five pools leave a 1×1 bottleneck.
"""
from jka.algorithms.dense_recipes import scenes_branching


def get_config():
    cfg = scenes_branching(steps=4800)
    cfg.branch.search_steps = 800
    return cfg
