"""DeepInversion on digits: teacher small_cnn (trained first on real digits, >= 0.97) → student
small_cnn width 0.5, from pixels optimised against the teacher only (no real image reaches the
student or the synthesis).

    jka train configs/datafree/digits_deepinv.py --workdir /tmp/digits_deepinv

Should reach >= 0.85 accuracy on the real held-out digits (summary.json ``eval.accuracy``).
Sample grids of the pool: add ``synthesis.grid_dir=/tmp/digits_deepinv/samples``.
"""
from jka import recipes
from jka.algorithms.deepinversion import inversion_config


def get_config():
    teacher = dict(workdir="teacher", config=recipes.digits_teacher())
    cfg = inversion_config(
        "deepinversion", teacher, "small_cnn", dict(width=0.5), rounds=25,
        steps=60, lr=0.1, jitter=1, flip=False, kd_steps=60, pool_size=64 * 25,
        student_crop_pad=1, student_flip=False)
    cfg.data.batch_size = 64
    cfg.optim.lr = 0.05
    return cfg
