"""Layer-wise amalgamation on the embedded digits (SPEC §3.1), no labels reaching the student.

Teachers: two small_cnn trained from labels on digits 0–4 and 5–9 (trained first, into
WORKDIR/teacher_*). Student: a small_cnn over all ten digits learning from the teachers' logits
and their block1..block3 feature maps through enc/fam/dec 1×1 blocks, w = (1, 1, 1), 800 steps.

    jka train configs/amalgamation/digits_layerwise.py --workdir /tmp/digits_layerwise

Should reach ≥ 0.95 accuracy over all ten classes on the held-out split (summary.json
eval.accuracy; labels_used: false). Stage-by-stage schedule: add ``amal.schedule=blockwise``.
"""
from jka.recipes_amalgamation import digits_layerwise


def get_config():
    return digits_layerwise()
