"""Distillation with one teacher: the zoo's terms (``zoo``, ``terms``), DIST (``dist``), DKD (``dkd``),
ReviewKD (``reviewkd``), online mutual distillation with feature fusion (``ffl``), and few-shot network
grafting (``netgraft``)."""
