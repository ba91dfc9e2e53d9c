"""ZSKT on digits (SPEC §5): G maximises kd(s, t, T=1), the student minimises it. Should reach ≥ 0.75.

Run: `jka train configs/datafree/digits_zskt.py --workdir /tmp/digits_zskt` (the digits teacher is trained first
into WORKDIR/teacher unless `teachers.0.workdir=/abs/path` names an exported one).
Student: small_cnn width 0.5 on 8×8 digits; no real image reaches the generator or the student;
`summary.json` reports the student's accuracy on the real held-out digits.

Digits hyper-parameters (batch 64, generator ngf 16, student SGD lr 0.1, generator Adam lr 5e-3,
400 units): see the comment in ``jka.algorithms.dafl.digits_datafree``. Measured: 0.933 on the real held-out digits after 400 units (teacher 0.989; 2-core CPU, ~2.5 min).
"""
from jka.algorithms.dafl import digits_datafree


def get_config():
    return digits_datafree("zskt", steps=400, kd_steps=5, g_steps=1)
