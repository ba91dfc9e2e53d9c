"""Baseline for digits_adaptive.py: the same overlapping teachers, learned from *averaged*.

Identical to configs/amalgamation/digits_adaptive.py except ``amal.selection='average'``: on the
overlapping sub-task {3,4,5,6} every sample learns from the mean of both teachers' sub-task
probabilities (and both teachers' features, each weighted 1/2) instead of the least-entropy one.

    jka train configs/amalgamation/digits_adaptive_average.py --workdir /tmp/digits_adaptive_average

Its eval.overlap_classes should be below digits_adaptive's.
"""
from jka.recipes_amalgamation import digits_adaptive


def get_config():
    return digits_adaptive("average")
