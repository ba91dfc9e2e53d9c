"""Distillation with one teacher: one module per method (the registry, :mod:`jka.methods`, names them);
``zoo`` and ``terms`` hold the zoo's feature terms."""
