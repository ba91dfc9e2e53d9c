"""DFAD on digits (SPEC §5): G maximises L1(s, t) on logits, 5 student steps per G step. Should reach ≥ 0.75.

Run: `jka train configs/datafree/digits_dfad.py --workdir /tmp/digits_dfad` (the digits teacher is trained first
into WORKDIR/teacher unless `teachers.0.workdir=/abs/path` names an exported one).
Student: small_cnn width 0.5 on 8×8 digits; no real image reaches the generator or the student;
`summary.json` reports the student's accuracy on the real held-out digits.

Digits hyper-parameters (batch 64, generator ngf 16, student SGD lr 0.1, generator Adam lr 5e-3,
400 units): see the comment in ``jka.algorithms.dafl.digits_datafree``. Measured: 0.754 after 400 units (6 min wall on a shared, heavily loaded 2-core CPU;
0.73 at 200, 0.77 at 300).
"""
from jka.algorithms.dafl import digits_datafree


def get_config():
    return digits_datafree("dfad", steps=400, kd_steps=5, g_steps=1)
