"""Knowledge amalgamation on the digits: several teachers → one 10-class student, no labels.

    jka train configs/amalgamation/digits.py:method=layerwise --workdir runs/digits_layerwise
    jka train configs/amalgamation/digits.py:method=cfl --workdir runs/digits_cfl
    jka train configs/amalgamation/digits.py:method=adaptive --workdir runs/digits_adaptive
    jka train configs/amalgamation/digits.py:method=adaptive_average --workdir runs/digits_adaptive_avg

Teachers are trained first from labels into WORKDIR/teacher_* when empty. Measured on the 540
held-out digits (2-core CPU, jax 0.10.2; summary.json eval.accuracy, labels_used: false):

- ``layerwise``: small_cnn teachers on 0–4 / 5–9 → small_cnn, learning from the teachers' logits
  and their block1..block3 maps through enc/fam/dec 1×1 blocks, w = (1, 1, 1), 800 steps: 0.9741.
  Stage-by-stage schedule: add ``amal.schedule=blockwise``.
- ``cfl``: heterogeneous teachers at 16 px (small_cnn on 0–4, wrn16_1 on 5–9): kd + MMD² in a
  common feature space (aligners → shared extractor, ch = C_s/4) + reconstruction, on the last map
  ('block3'; the WRN's 4×4 map is resized to 8×8) and the pooled vector, w = (1, 10, 10), Adam 1e-3,
  800 steps: 0.9611 (halves 0.9520 / 0.9703).
- ``adaptive``: overlapping teachers — A, a small_cnn on 0–6 (600 steps); B, a quarter-width one on
  3–9 trained 150 steps (less sure on the overlap: 0.968 there, A 1.000). Sub-tasks {0,1,2} (A),
  {3..6} (A or B), {7,8,9} (B); per image and sub-task the teacher whose prediction has the least
  entropy is learned from: one component net per sub-task (WORKDIR/component_<g>, 300 steps), then
  the multi-head student (WORKDIR/student, 600 steps). 0.983; overlap 3–6 1.000; 7–9 0.950 (seed 1:
  0.981, 0.995, 0.950). summary.json also has eval.selection_subtask<g>_teacher<k>.
- ``adaptive_average``: the same teachers, every sample learning from both teachers averaged on the
  overlap: 0.980, overlap 0.991, 7–9 0.950 (seed 1: 0.980, 0.986, 0.956), below ``adaptive`` on
  both seeds, as the paper claims (by 1–2 of the 540 images here).
"""
from jka.errors import unknown_choice
from jka.recipes.amalgamation import digits_adaptive, digits_cfl, digits_layerwise

VARIANTS = {"layerwise": digits_layerwise, "cfl": digits_cfl, "adaptive": lambda: digits_adaptive("entropy"),
            "adaptive_average": lambda: digits_adaptive("average")}


def get_config(method: str = "layerwise"):
    if method not in VARIANTS:
        raise unknown_choice("method (configs/amalgamation/digits.py:method=...)", method, VARIANTS)
    return VARIANTS[method]()
