"""``jka demo``: two digits teachers (0–4 and 5–9, trained from labels) amalgamated into one
10-class student that never sees a label. Runs offline on a CPU in well under three minutes."""
from __future__ import annotations

import contextlib
import os
import tempfile
import time

from jka import paths, run
from jka.train.workdir import check_output_file


def run_demo(out: str | None = None, workdir: str | None = None, progress: bool = True) -> dict:
    if out:
        check_output_file(out)  # before the minutes of training, not after
    with contextlib.ExitStack() as stack:
        workdir = workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="jka-demo-"))
        t0 = time.perf_counter()
        cfg = run.load("digits/kd")
        cfg.train.progress = progress
        for spec in cfg.teachers:
            spec["config"].train.progress = progress
        summary = run.train(cfg, os.path.join(workdir, "student"))
        teachers = []
        for spec in cfg.teachers:
            summary_t = paths.read_json(os.path.join(workdir, "student", spec["workdir"], "summary.json"))
            teachers.append({"classes": list(spec["classes"]), "accuracy": summary_t["eval"]["accuracy"]})
        seconds = round(time.perf_counter() - t0, 1)
    ev = summary["eval"]
    result = {
        "method": cfg.algorithm,
        "teachers": teachers,
        "student": {
            "accuracy": ev["accuracy"],
            "per_teacher_classes": [ev[f"teacher{k}_classes"] for k in range(len(teachers))],
            "labels_used": summary["labels_used"],
        },
        "seconds": seconds,
    }
    _print_table(result)
    if out:
        paths.write_json(out, result)
    return result


def _print_table(r: dict):
    rows = [("network", "classes", "test accuracy")]
    for k, t in enumerate(r["teachers"]):
        rows.append((f"teacher {'AB'[k] if k < 2 else k}", _span(t["classes"]), f"{t['accuracy']:.4f}"))
    for k, (t, acc) in enumerate(zip(r["teachers"], r["student"]["per_teacher_classes"])):
        rows.append((f"student on teacher {'AB'[k] if k < 2 else k}'s classes", _span(t["classes"]), f"{acc:.4f}"))
    rows.append(("student, all classes", "0-9", f"{r['student']['accuracy']:.4f}"))
    w = [max(len(row[i]) for row in rows) for i in range(3)]
    rows.insert(1, tuple("-" * x for x in w))
    print(f"\njka demo: {r['method']} of two digits teachers into one student, no labels "
          f"({r['seconds']} s; held-out test split of scikit-learn's digits)")
    for row in rows:
        print("  ".join(c.ljust(w[j]) for j, c in enumerate(row)))


def _span(classes):
    c = sorted(classes)
    return f"{c[0]}-{c[-1]}" if c == list(range(c[0], c[-1] + 1)) else ",".join(map(str, c))
