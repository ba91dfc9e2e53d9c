"""Knowledge amalgamation: several teachers → one student that masters all their tasks, no labels.

One module per method (the registry, :mod:`jka.methods`, names them); ``parts`` and ``dense`` hold what
several share. Data-free amalgamation is in :mod:`jka.methods.datafree`.
"""
