"""Data-free amalgamation with a group-stack dual GAN: two digits teachers — small_cnn (width 0.5) on
0–4 and on 5–9, trained first from real digits — into one 10-class small_cnn, with no real image seen
by the generator or the student.

    jka train datafree/digits_amalgamation --workdir runs/digits_amalgamation
    jka train datafree/digits_amalgamation:variant=paper --workdir runs/digits_amalgamation_paper

Phases: gan/ (generator + filters, 1000 steps), dual_1..3/ (dual blocks, 300 steps each), then the
regrouped student, exported to model/; with ``variant=jka`` (this config's default) it is first
fine-tuned end to end in assemble/ (600 steps). phases.gan in summary.json reports how the teachers
see the generated images (teacher<m>_share: the share of images each teacher claims in the union
label space, union_classes_hit).

The library's defaults are the paper's method: per-teacher L_oh/L_bal terms, no BN-statistics prior,
the regrouped dual network as the student (``variant=paper``). On 8×8 digits that method does not
learn: its images are confident for the teachers but unlike digits. This config therefore turns on
jka's three variants (``variant=jka``): union-label terms (``datafree_amalgamation.joint``), the BN-statistics
prior over each teacher's claimed images (``datafree_amalgamation.bn=5``) and 600 assemble steps. Measured on
the 540 real held-out digits (2-core CPU, seed 0; summary.json eval.accuracy):

- paper (per-teacher terms, λ_bn 0, regrouped):  0.100
- + λ_bn 5:                                       0.765
- + joint labels (the regrouped student, dual_3): 0.826
- + 600 assemble steps (variant=jka):             0.911 (0–4: 0.919, 5–9: 0.903)

Unpublished weights chosen here (see jka/methods/datafree/amalgamation): alpha (activation) 0.1,
beta (balance / information entropy) 5, gamma (sparsity, multi-class) 0, intermediate-group
consistency 1, stream weights 1.0 (image stream) and 0.5 (generator-feature stream), trainable
per-teacher heads at block 3.
"""
from jka.configs.common import DIGITS_HALVES, config, digits_teacher
from jka.errors import unknown_choice

# jka's variants of data-free amalgamation, as this config turns them on (docs/methods.md): union-label
# terms, the BN-statistics prior over each teacher's claimed images, and end-to-end assembly.
JKA_VARIANTS = dict(joint=True, bn=5.0, assemble_steps=600)
CHOICES = {"variant": ["jka", "paper"]}


def get_config(variant: str = "jka"):
    """Two digits teachers (0–4, 5–9; small_cnn width 0.5, trained first from real digits) → one
    10-class small_cnn of the same width: 1000 GAN steps, 300 per dual block, batch 64.
    ``variant``: ``paper`` (the library's defaults) or ``jka`` (:data:`JKA_VARIANTS`)."""
    if variant not in CHOICES["variant"]:
        raise unknown_choice("data-free amalgamation variant", variant, CHOICES["variant"])
    width = 0.5
    cfg = config("datafree_amalgamation", datafree_amalgamation=dict(
        gamma=0.0, gan_steps=1000, dual_steps=300, batch_size=64, **(JKA_VARIANTS if variant == "jka" else {})))
    cfg.teachers = [dict(workdir=f"teacher_{n}", classes=list(c), config=digits_teacher(c, width=width))
                    for n, c in zip("ab", DIGITS_HALVES)]
    cfg.model.kwargs = dict(width=width)
    cfg.train.log_every = 100
    return cfg
