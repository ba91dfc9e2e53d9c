"""Data-free amalgamation with a group-stack dual GAN (docs/methods.md, "Data-free amalgamation";
CVPR 2020), as a four-phase job (:mod:`.job`, ``algorithm: datafree_amalgamation``). Teachers
``A_1..A_M`` are ``small_cnn`` classifiers of one width over disjoint class subsets, seen as B = 3
blocks (block 2 ends with the max-pool) and a head; a teacher runs from any block's input
(``SmallCNN(start=b)``).

1. :data:`~.phases.GAN` (``WORKDIR/gan``): the group-stack generator (group j makes a feature shaped
   like the input of teacher block B−j+1, the last group the image) and per-teacher channel filters,
   against the frozen teachers: ``L_gan + inter·L_inter`` (:mod:`.objectives`), per teacher (the
   paper's), or with ``joint`` (jka's variant) over the union logits ``u = [g_1(y_1) | … | g_M(y_M)]``;
   ``bn`` > 0 (jka's) adds each teacher's ``R_bn``, weighted by its share of ``σ(u)`` with ``joint``.
2. :data:`~.phases.DUAL` (``WORKDIR/dual_1..B``): dual block b (G and earlier blocks frozen)
   reproduces each teacher's prediction through the teachers' later blocks from two streams (the
   image through dual blocks 1..b; G's matching feature through block b); BN statistics from stream 1.
3. Regroup: the dual blocks and block B's per-teacher heads form a plain ``small_cnn`` over the union
   of classes, in teacher order (:func:`.networks.regroup`).
4. :data:`~.phases.ASSEMBLE` (``WORKDIR/assemble``, ``assemble_steps`` > 0, jka's variant): the
   regrouped student trained end to end (G frozen) with block B's loss. The result of 3 or 4 is
   exported to ``WORKDIR/model``.

The weights α, β, γ and the stream weights are not published: the values chosen, why, and what they
measured are in docs/methods.md. A new teacher architecture needs its blocks' input shapes, a
``start`` argument and a dual block module of the same layout.
"""
