"""A short end-to-end data-free run on digits: the student beats chance on real held-out digits,
having seen no real image (the step gets empty batches)."""
import pytest

from jka.recipes.datafree import digits_datafree
from jka.recipes.digits import digits_teacher
from jka.run import train


@pytest.mark.slow
def test_short_dfad_run_beats_chance(tmp_path):
    cfg = digits_datafree("dfad", steps=40, kd_steps=5, g_steps=1)
    cfg.teachers = [dict(workdir="teacher", config=digits_teacher(steps=200))]
    cfg.data.batch_size = 32  # half the digits config's batch: this only checks transfer, fast
    cfg.train.progress = False
    summary = train(cfg, str(tmp_path))
    assert summary["labels_used"] is False
    # Chance is 0.1; 40 units is far from converged (0.21 measured), so this only checks that learning
    # from synthesized images alone transfers to real digits.
    assert summary["eval"]["accuracy"] > 0.15
