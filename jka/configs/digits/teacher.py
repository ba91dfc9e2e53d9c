"""A digits classifier trained from labels (how the demo's teachers are made).

    jka train digits/teacher --workdir runs/digits_teacher
    jka train digits/teacher data.classes=[0,1,2,3,4] --workdir runs/teacher_a

small_cnn, SGD 0.05 cosine, 600 steps of 64, no crop. Measured on the 540 held-out digits
(2-core CPU, about 10 s): 1.0000 on digits 0–4, 1.0000 on 5–9 (the demo's teachers A and B).
"""
from jka.configs.common import digits_teacher


def get_config():
    return digits_teacher()
