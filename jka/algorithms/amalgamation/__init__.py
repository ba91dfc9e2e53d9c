"""Knowledge amalgamation: several teachers → one student that masters all their tasks, no labels.

``layerwise`` (layer-wise amalgamation), ``cfl`` (common feature learning), ``adaptive`` (selective
amalgamation from overlapping teachers, a job) and ``branching`` (task branching of dense teachers,
a job); ``dense`` holds the dense-task base and the supervised dense teachers. Data-free
amalgamation is in :mod:`jka.algorithms.datafree.amalgamation`.
"""
