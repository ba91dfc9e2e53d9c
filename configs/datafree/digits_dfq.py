"""DFQ on digits (SPEC §5): G minimises adv + bn + oh + 20·bal, the student learns kd.

Run: `jka train configs/datafree/digits_dfq.py --workdir /tmp/digits_dfq` (the digits teacher is trained first
into WORKDIR/teacher unless `teachers.0.workdir=/abs/path` names an exported one).
Student: small_cnn width 0.5 on 8×8 digits; no real image reaches the generator or the student;
`summary.json` reports the student's accuracy on the real held-out digits.

Digits hyper-parameters (batch 64, generator ngf 16, student SGD lr 0.1, generator Adam lr 5e-3,
300 units): see the comment in ``jka.algorithms.dafl.digits_datafree``. Measured: 0.976 on the real held-out digits after 300 units (teacher 0.989; 2-core CPU, ~2 min).
"""
from jka.algorithms.dafl import digits_datafree


def get_config():
    return digits_datafree("dfq", steps=300, kd_steps=5, g_steps=1)
