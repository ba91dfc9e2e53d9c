"""The data-free amalgamation job: the GAN phase, B dual-block phases, the regrouped student, and the
optional assembly (package docstring); the student is exported to ``WORKDIR/model``."""
from __future__ import annotations

import os

from jka.config import derive
from jka.methods.api import Method, need_teachers
from jka.methods.datafree.amalgamation.phases import ASSEMBLE, DUAL, GAN, Settings, resolved
from jka.models.small_cnn import NUM_BLOCKS
from jka.train.export import export_model, load_model
from jka.train.phases import Phase

WEIGHTS = ("alpha", "beta", "gamma", "inter", "stream1", "stream2", "joint", "bn", "train_heads", "assemble_steps")


def plan(job):
    s = resolved(job.settings)
    base = derive(job.cfg, **{"data.batch_size": s.batch_size})

    def phase(method, steps: int, name: str, options=None, final: bool = False, **changes):
        cfg = derive(base, **{"train.steps": steps, **changes})
        return Phase(method, cfg, os.path.join(job.workdir, name), job.teachers, options or {}, name=name, final=final)

    summaries = {"gan": (yield phase(GAN, s.gan_steps, "gan"))}
    gan, _ = load_model(os.path.join(job.workdir, "gan"))  # frozen from here on: handed to every later phase
    prev = None
    for b in range(1, NUM_BLOCKS + 1):
        name = f"dual_{b}"
        summaries[name] = yield phase(DUAL, s.dual_steps, name, dict(block=b, gan=gan, prev=prev),
                                      final=b == NUM_BLOCKS and not s.assemble_steps)
        if b < NUM_BLOCKS:
            prev = load_model(os.path.join(job.workdir, name))[0]["blocks"]
    last = f"dual_{NUM_BLOCKS}"
    if s.assemble_steps > 0:
        summaries["assemble"] = yield phase(ASSEMBLE, s.assemble_steps, "assemble", dict(gan=gan), final=True,
                                            **{"train.init_from": os.path.join(job.workdir, last)})
        last = "assemble"
    if not job.rehearsal:  # the regrouped (and assembled) small_cnn is the job's model
        variables, info = load_model(os.path.join(job.workdir, last))
        export_model(os.path.join(job.workdir, "model"), info.pop("arch"), info.pop("num_classes"), variables, **info)
    final = summaries[last]
    return {"step": s.gan_steps + NUM_BLOCKS * s.dual_steps + s.assemble_steps, "algorithm": "datafree_amalgamation",
            "eval": final["eval"], "phases": {k: v["eval"] for k, v in summaries.items()},
            "student_classes": final.get("student_classes"), "teachers": final.get("teachers"), "labels_used": False,
            "weights": {k: getattr(s, k) for k in WEIGHTS}}


METHOD = Method("datafree_amalgamation", plan=plan, settings=Settings, check=need_teachers("datafree_amalgamation"),
                summary="data-free amalgamation of small_cnn teachers with a group-stack dual GAN (a job of phases)")
