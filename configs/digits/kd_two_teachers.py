"""The demo as a config: two teachers (digits 0–4 and 5–9), trained first if their workdirs are
empty, amalgamated into one 10-class student by ``kd(s, concat(t_A, t_B), T)`` with no labels.

    jka train configs/digits/kd_two_teachers.py --workdir runs/kd_digits

Student reaches about 0.96 on all 10 held-out classes (summary.json: eval.accuracy).
"""
from jka import recipes


def get_config():
    return recipes.digits_kd_student(recipes.digits_teacher_specs())
