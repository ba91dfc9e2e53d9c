"""Distillation with one teacher: the zoo (``zoo``, ``terms``), DIST, DKD, ReviewKD, CRD, NetGraft, and
FFL (online mutual distillation)."""
