"""Adaptive selective amalgamation (SPEC §3.3) on the embedded digits, teachers overlapping on 3–6.

Teachers, trained first from labels into WORKDIR/teacher_*: A, a small_cnn on digits 0–6 (600
steps); B, a quarter-width small_cnn on digits 3–9 trained only 60 steps (an unsure teacher on the
overlap). Sub-tasks: {0,1,2} (A), {3,4,5,6} (A or B), {7,8,9} (B). For every unlabelled image and
sub-task, the least-entropy teacher is the one learned from. Phase 1 trains one component net per
sub-task (WORKDIR/component_<g>), phase 2 the multi-head small_cnn student from the components
(WORKDIR/student, the exported model).

    jka train configs/amalgamation/digits_adaptive.py --workdir /tmp/digits_adaptive

summary.json: eval.accuracy (all ten), eval.overlap_classes (digits 3–6), the selection statistics
eval.selection_subtask<g>_teacher<k>, labels_used: false. Compare with
configs/amalgamation/digits_adaptive_average.py (same teachers, averaged): adaptive should be
higher on eval.overlap_classes.
"""
from jka.recipes_amalgamation import digits_adaptive


def get_config():
    return digits_adaptive("entropy")
