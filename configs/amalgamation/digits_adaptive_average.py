"""Baseline for digits_adaptive.py: the same overlapping teachers, learned from *averaged*.

Identical to configs/amalgamation/digits_adaptive.py except ``amal.selection='average'``: on the
overlapping sub-task {3,4,5,6} every sample learns from the mean of both teachers' calibrated
sub-task logits (and both teachers' features, each weighted 1/2) instead of the least-entropy one.

    jka train configs/amalgamation/digits_adaptive_average.py --workdir /tmp/digits_adaptive_average

Its eval.overlap_classes should be below digits_adaptive's. Measured (CPU): accuracy 0.911, overlap
0.986 (adaptive: 1.000), digits 7–9 0.750.
"""
from jka.recipes_amalgamation import digits_adaptive


def get_config():
    return digits_adaptive("average")
