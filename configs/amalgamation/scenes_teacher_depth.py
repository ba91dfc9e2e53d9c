"""Depth teacher for task branching (SPEC §3.4) on the embedded procedural scenes.

SegNet-VGG16-BN at width 0.125 with a one-channel head (metres) trained from labels (L1 over valid
pixels, depth 0 = invalid) on 2,000 32×32 scenes (depth 1–10 m), Adam 1e-3, 1,000 steps of 32,
horizontal flips:

    jka train configs/amalgamation/scenes_teacher_depth.py --workdir /tmp/scenes_teacher_depth

summary.json: eval.rmse, eval.abs_rel, eval.delta1..3 on 400 held-out scenes (RMSE well under 1 m
expected; see the README's amalgamation table for the measured value).
configs/amalgamation/scenes_branching.py trains this same config as its depth teacher.
"""
from jka.algorithms.dense_recipes import scenes_teacher


def get_config():
    return scenes_teacher("depth")
