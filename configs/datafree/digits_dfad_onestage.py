"""One-stage DFAD on digits (SPEC §5.1): one backward pass updates student and G (gradient reversal). Within 2 points of two-stage DFAD.

Run: `jka train configs/datafree/digits_dfad_onestage.py --workdir /tmp/digits_dfad_onestage` (the digits teacher is trained first
into WORKDIR/teacher unless `teachers.0.workdir=/abs/path` names an exported one).
Student: small_cnn width 0.5 on 8×8 digits; no real image reaches the generator or the student;
`summary.json` reports the student's accuracy on the real held-out digits.

Digits hyper-parameters (batch 64, generator ngf 16, student SGD lr 0.1, generator Adam lr 5e-3,
400 units): see the comment in ``jka.algorithms.dafl.digits_datafree``. Same schedule as digits_dfad.py (1 generator + 5 student updates per unit). Measured:
0.761 after 400 units (two-stage DFAD, same settings and seed: 0.754).
"""
from jka.algorithms.dafl import digits_datafree


def get_config():
    return digits_datafree("dfad", steps=400, kd_steps=5, g_steps=1, one_stage=True)
