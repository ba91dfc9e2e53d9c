"""Common Feature Learning (SPEC §3.2) on the embedded digits with teachers of DIFFERENT architectures.

Teachers at 16 px (digits upsampled): a small_cnn on digits 0–4 and a wrn16_1 on 5–9, trained first
from labels into WORKDIR/teacher_*. Student: a small_cnn over all ten digits that never sees a
label: kd on the concatenated logits + MMD² between the student's and each teacher's features in
a common space (aligners → shared extractor, ch = C_s/4) + reconstruction through decoders, on two
feature groups: the last map ('block3'; the WRN's 4×4 map is resized to the student's 8×8) and the
pooled vector. Weights (1, 10, 10), Adam 1e-3, 800 steps.

    jka train configs/amalgamation/digits_cfl.py --workdir /tmp/digits_cfl

Should reach ≥ 0.95 accuracy over all ten classes on the held-out split (summary.json
eval.accuracy; labels_used: false).
"""
from jka.recipes_amalgamation import digits_cfl


def get_config():
    return digits_cfl()
