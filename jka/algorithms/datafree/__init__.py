"""Data-free distillation and amalgamation: no real image reaches the training step.

``generator``: DAFL, ZSKT, DFAD, DFQ (a generator against the teacher, and the student);
``inversion``: DeepInversion (pixels optimised against the teacher) and the shared pool machinery,
``cmi``: contrastive model inversion; ``synthesis``: on-device pools, banks and views;
``adversarial``: one-stage gradient tricks; ``gan``: a DCGAN trainer; ``amalgamation``: data-free
amalgamation with a group-stack dual GAN (a job).
"""
