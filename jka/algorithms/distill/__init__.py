"""Distillation from one teacher: the zoo of extra terms (``distill``), online mutual distillation
with feature fusion (``ffl``, no teacher) and few-shot network grafting (``netgraft``, a job)."""
