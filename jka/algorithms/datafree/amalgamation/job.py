"""The data-free amalgamation job: the GAN phase, B dual-block phases, the regrouped student, and the
optional end-to-end assembly (package docstring); the student is exported to ``WORKDIR/model``."""
from __future__ import annotations

import os

from jka.algorithms.datafree.amalgamation.phases import Assemble, DualBlocks, DualGAN, settings
from jka.config import derive
from jka.models.small_cnn import NUM_BLOCKS
from jka.train.export import export_model, load_model
from jka.train.phases import Phase, run_phase


def _base(cfg):
    return derive(cfg, **{"data.batch_size": int(settings(cfg).batch_size)})


def _dual_phase(base, workdir, teachers, b: int, gan) -> Phase:
    prev = load_model(os.path.join(workdir, f"dual_{b - 1}"))[0]["blocks"] if b > 1 else None
    return Phase(DualBlocks, derive(base, **{"train.steps": int(settings(base).dual_steps)}),
                 os.path.join(workdir, f"dual_{b}"), teachers, dict(block=b, gan=gan, prev=prev))


def _assemble_phase(base, workdir, teachers, gan) -> Phase:
    sub = derive(base, **{"train.steps": int(settings(base).assemble_steps),
                          "train.init_from": os.path.join(workdir, f"dual_{NUM_BLOCKS}")})
    return Phase(Assemble, sub, os.path.join(workdir, "assemble"), teachers, dict(gan=gan))


def run(cfg, workdir: str, teachers) -> dict:
    s, base = settings(cfg), _base(cfg)
    phases = {"gan": run_phase(Phase(DualGAN, derive(base, **{"train.steps": int(s.gan_steps)}),
                                     os.path.join(workdir, "gan"), teachers))["eval"]}
    gan, _ = load_model(os.path.join(workdir, "gan"))  # frozen from here on: handed to every later phase
    for b in range(1, NUM_BLOCKS + 1):
        summary = run_phase(_dual_phase(base, workdir, teachers, b, gan))
        phases[f"dual_{b}"] = summary["eval"]
    last = os.path.join(workdir, f"dual_{NUM_BLOCKS}")
    if int(s.assemble_steps) > 0:
        summary = run_phase(_assemble_phase(base, workdir, teachers, gan))
        phases["assemble"] = summary["eval"]
        last = os.path.join(workdir, "assemble")
    variables, info = load_model(last)  # the regrouped (and assembled) small_cnn
    export_model(os.path.join(workdir, "model"), info.pop("arch"), info.pop("num_classes"), variables, **info)
    return {"step": int(s.gan_steps) + NUM_BLOCKS * int(s.dual_steps) + int(s.assemble_steps),
            "algorithm": "datafree_amalgamation",
            "eval": summary["eval"], "phases": phases, "student_classes": summary["student_classes"],
            "teachers": summary["teachers"], "labels_used": False, "weights": {
                k: s[k] for k in ("alpha", "beta", "gamma", "inter", "stream1", "stream2", "joint", "bn",
                                  "train_heads", "assemble_steps")}}


def final_phase(cfg, workdir: str, teachers) -> Phase:
    """The phase ``jka eval`` evaluates: the assembled student, or the last dual block."""
    base, (gan, _) = _base(cfg), load_model(os.path.join(workdir, "gan"))
    if int(settings(cfg).assemble_steps) > 0:
        return _assemble_phase(base, workdir, teachers, gan)
    return _dual_phase(base, workdir, teachers, NUM_BLOCKS, gan)
