"""ReviewKD (docs/methods.md, "ReviewKD"): its settings and digits variant, the levels it pairs, and the
one-line refusals. The loss and its gradients are checked in tests/objectives/test_reviewkd.py; the step
of the digits variant is traced by tests/test_rehearsal.py."""
import pytest

from jka import methods, models, run
from jka.errors import ConfigError
from jka.methods.api import Context
from jka.methods.distill import reviewkd
from jka.train.teachers import Teacher
from tests.objectives import reference as ref


def random_teacher(width=1.0):
    """An untrained small_cnn teacher over the ten digits (random weights: the steps, not the accuracy)."""
    module = models.create("small_cnn", 10, width=width)
    return Teacher("small_cnn", module, ref.numpy_init(module, (1, 8, 8, 1), 3, train=False), list(range(10)),
                   {"width": width})


def test_reviewkd_has_the_reference_defaults_and_a_digits_variant():
    assert reviewkd.Settings() == reviewkd.Settings(weight=1.0, ce=1.0, warmup_epochs=20.0, pooled=True)
    cfg = run.load("distill/digits:method=reviewkd")
    assert cfg.algorithm == "reviewkd" and len(cfg.teachers) == 1
    assert methods.get("reviewkd").read(cfg) == reviewkd.Settings(warmup_epochs=2.0)


def test_levels_without_the_pooled_vector():
    cfg = run.load("distill/digits:method=reviewkd", ["reviewkd.pooled=False"])
    p = reviewkd.parts(Context(cfg, methods.get("reviewkd").read(cfg), [random_teacher(2.0)]))
    assert p.review.t_shapes == ((8, 8, 64), (8, 8, 128), (4, 4, 256)) and p.review.mid == 64


@pytest.mark.parametrize("overrides,message", [
    (["reviewkd.student_stages=['block3']"], "set reviewkd.student_stages and reviewkd.teacher_stages together"),
    (["reviewkd.student_stages=['block3']", "reviewkd.teacher_stages=['nope']"], "the teacher has no feature 'nope'"),
])
def test_bad_stages_are_refused_in_one_line(overrides, message):
    cfg = run.load("distill/digits:method=reviewkd", overrides)
    with pytest.raises(ConfigError, match=message):
        methods.get("reviewkd").program(cfg, [random_teacher()], None)
