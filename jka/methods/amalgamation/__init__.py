"""Knowledge amalgamation: several teachers → one student that masters all their tasks, no labels.

``layerwise`` (layer-wise amalgamation), ``cfl`` (common feature learning), ``adaptive`` (selective
amalgamation from overlapping teachers, a job) and ``branching`` (task branching of dense teachers,
a job); ``dense_supervised`` trains the dense teachers. ``parts`` holds what the student + blocks
methods share, ``dense`` the dense-task data, step and metrics. Data-free amalgamation is a data-free
method (:mod:`jka.methods.datafree`).
"""
