"""One-stage DFAD on digits (SPEC §5.1): one backward pass updates student and G (gradient reversal). Within 2 points of two-stage DFAD.

Run: `jka train configs/datafree/digits_dfad_onestage.py --workdir /tmp/digits_dfad_onestage` (the digits teacher is trained first
into WORKDIR/teacher unless `teachers.0.workdir=/abs/path` names an exported one).
Student: small_cnn width 0.5 on 8×8 digits; no real image reaches the generator or the student;
`summary.json` reports the student's accuracy on the real held-out digits.
"""
from jka.algorithms.dafl import digits_datafree


def get_config():
    return digits_datafree("dfad", steps=150, kd_steps=5, g_steps=1, one_stage=True)
