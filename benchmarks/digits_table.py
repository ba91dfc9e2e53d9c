"""Re-measure the README's digits table: run every digits experiment's config and record its eval.

    python -m benchmarks.digits_table ROOT OUT.json [name ...]

ROOT holds the runs (one workdir per entry; teachers shared where the README's numbers share
them); OUT.json gets ``{name: {"eval": ..., "step": ..., "seconds": ...}}`` and is updated after
every entry, so an interrupted table resumes. CPU-only and about 45 minutes on a 2-core machine;
the numbers are deterministic for one machine and library build (see the README for the range
seen across machines).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ZOO = ["kd", "hint", "at", "sp", "cc", "vid", "rkd", "pkt", "nst", "fsp", "ft", "svd", "dist"]


def entries(root: str) -> list[tuple[str, str | None, list[str]]]:
    """(name, config, overrides); config None is `jka demo`."""
    zoo_teacher, graft_teacher = f"teachers.0.workdir={root}/zoo_teacher", f"teachers.0.workdir={root}/netgraft_teacher"
    out = [("demo", None, []),
           ("teacher_0_4", "digits/teacher", ["data.classes=[0,1,2,3,4]"]),
           ("teacher_5_9", "digits/teacher", ["data.classes=[5,6,7,8,9]"])]
    out += [(m, f"amalgamation/digits:method={m}", []) for m in ("layerwise", "cfl", "adaptive",
                                                                           "adaptive_average")]
    out += [(m, f"datafree/digits:method={m}", []) for m in ("dafl", "zskt", "dfad", "dfq")]
    out += [("dfad_onestage", "datafree/digits:method=dfad,one_stage=True", []),
            ("deepinversion", "datafree/digits:method=deepinversion", []),
            ("cmi", "datafree/digits:method=cmi", []),
            ("datafree_amalgamation", "datafree/digits_amalgamation", []),
            ("distill_scratch", "distill/digits:method=scratch", [])]
    out += [(f"distill_{m}", f"distill/digits:method={m}", [zoo_teacher]) for m in ZOO]
    for seed in (0, 1, 2):
        out += [(f"ffl_seed{seed}", "distill/digits_ffl", [f"seed={seed}"]),
                (f"ffl_alone_seed{seed}", "distill/digits_ffl:alone=True", [f"seed={seed}"])]
    out += [(f"netgraft_n{n}", "distill/digits_netgraft", [f"netgraft.n_per_class={n}", graft_teacher])
            for n in (1, 5, 10)]
    out += [("gan_sym_onestage", "datafree/digits_gan:loss=symmetric", []),
            ("gan_asym_onestage", "datafree/digits_gan", []),
            ("transfer_study", "transfer/digits_study", []),
            ("branching", "amalgamation/scenes", [])]
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root, out_path, only = os.path.abspath(argv[0]), argv[1], argv[2:]
    os.makedirs(root, exist_ok=True)
    results = json.load(open(out_path)) if os.path.exists(out_path) else {}
    for name, cfg, overrides in entries(root):
        if (only and name not in only) or name in results:
            continue
        wd = os.path.join(root, name)
        t0 = time.perf_counter()
        if cfg is None:
            cmd = [sys.executable, "-m", "jka", "demo", "--out", os.path.join(root, "demo.json"), "--workdir", wd]
        else:
            cmd = [sys.executable, "-m", "jka", "train", cfg, *overrides, "train.progress=False", "--workdir", wd]
        p = subprocess.run(cmd, capture_output=True, text=True)
        seconds = round(time.perf_counter() - t0, 1)
        if p.returncode != 0:
            results[name] = {"error": p.stderr[-2000:], "seconds": seconds}
        elif cfg is None:
            results[name] = {**json.load(open(os.path.join(root, "demo.json"))), "seconds": seconds}
        else:
            s = json.load(open(os.path.join(wd, "summary.json")))
            results[name] = {"eval": s.get("eval"), "step": s.get("step"), "seconds": seconds}
        print(name, seconds, "ERROR" if p.returncode else json.dumps(results[name].get("eval")
                                                                      or results[name].get("student"))[:200],
              flush=True)
        with open(out_path, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
