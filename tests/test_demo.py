"""The embedded demo end to end: real held-out digits, no label reaching the student."""
import json

from jka.demo import run_demo


def test_demo_student_masters_both_teachers_without_labels(tmp_path):
    out = tmp_path / "r.json"
    result = run_demo(out=str(out), workdir=str(tmp_path / "demo"), progress=False)
    on_disk = json.load(open(out))
    assert on_disk["student"]["accuracy"] == result["student"]["accuracy"]
    assert [t["classes"] for t in on_disk["teachers"]] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert all(t["accuracy"] >= 0.97 for t in on_disk["teachers"])
    assert on_disk["student"]["labels_used"] is False
    assert on_disk["student"]["accuracy"] >= 0.95
    assert len(on_disk["student"]["per_teacher_classes"]) == 2
