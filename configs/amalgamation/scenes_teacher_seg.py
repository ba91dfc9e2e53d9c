"""Segmentation teacher for task branching (SPEC §3.4) on the embedded procedural scenes.

SegNet-VGG16-BN at width 0.125 (channels 8..64) trained from labels (cross-entropy, label 255
ignored) on 2,000 32×32 scenes of 5 classes (background + 4 shapes), Adam 1e-3, 1,000 steps of 32,
horizontal flips:

    jka train configs/amalgamation/scenes_teacher_seg.py --workdir /tmp/scenes_teacher_seg

summary.json: eval.miou and eval.pixel_acc on 400 held-out scenes (mIoU ≈ 0.8 expected; see the
README's amalgamation table for the measured value). configs/amalgamation/scenes_branching.py
trains this same config as its segmentation teacher.
"""
from jka.algorithms.dense_recipes import scenes_teacher


def get_config():
    return scenes_teacher("segmentation")
