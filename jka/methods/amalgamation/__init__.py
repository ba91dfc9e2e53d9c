"""Knowledge amalgamation: several teachers → one student that masters all their tasks, no labels.

``layerwise``, ``cfl``, ``adaptive`` (a job) and ``branching`` (dense teachers, a job); ``dense_supervised``
trains the dense teachers; ``parts`` and ``dense`` hold what they share. Data-free amalgamation is in
:mod:`jka.methods.datafree`.
"""
