"""Data-free amalgamation with a group-stack dual GAN: two digits teachers — small_cnn (width 0.5) on
0–4 and on 5–9, trained first from real digits — into one 10-class small_cnn, with no real image seen
by the generator or the student.

    jka train configs/datafree/digits_amalgamation.py --workdir runs/digits_amalgamation

Phases: gan/ (generator + filters, 1000 steps), dual_1..3/ (dual blocks, 300 steps each), the
regrouped student fine-tuned end to end in assemble/ (600 steps), exported to model/. Measured:
0.911 on the real held-out digits (0–4: 0.919, 5–9: 0.903; summary.json eval.accuracy); phases.gan
reports how the teachers see the generated images (teacher<m>_share: the share of images each
teacher claims in the union label space, union_classes_hit).

Unpublished weights chosen here (see jka/algorithms/datafree/amalgamation): alpha (activation) 0.1,
beta (balance / information entropy) 5, gamma (sparsity, multi-class) 0, intermediate-group
consistency 1, stream weights 1.0 (image stream) and 0.5 (generator-feature stream), union label
space on (``joint``), BN-statistics prior 5 (each teacher over the images it claims), trainable
per-teacher heads at block 3, 600 assemble steps.
"""
from jka.recipes.datafree import digits_amalgamation


def get_config():
    return digits_amalgamation(gan_steps=1000, dual_steps=300, width=0.5, batch_size=64)
