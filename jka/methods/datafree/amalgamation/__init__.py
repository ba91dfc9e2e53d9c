"""Data-free amalgamation with a group-stack dual GAN (docs/methods.md, "Data-free amalgamation";
CVPR 2020), as a four-phase job (:mod:`.job`, ``algorithm: datafree_amalgamation``). Teachers
``A_1..A_M`` are ``small_cnn`` classifiers of one width over disjoint class subsets, seen as B = 3
blocks (block 2 ends with the max-pool) and a head; a teacher runs from any block's input
(``SmallCNN(start=b)``).

1. :data:`~.phases.GAN` (``WORKDIR/gan``): the group-stack generator (group j makes a feature
   shaped like the input of teacher block B−j+1, the last group the image) and the per-teacher
   channel filters, against the frozen teachers: ``L_gan + inter·L_inter`` (:mod:`.objectives`).
   The paper's per-teacher terms are the default. With ``joint`` (jka's variant, multi-class
   teachers) every term is taken over the union logits ``u = [g_1(y_1) | … | g_M(y_M)]``, so each
   image is claimed by one teacher. ``bn`` > 0 (jka's variant) adds ``R_bn,m``, which weighs each
   image by teacher m's share of ``σ(u)`` with ``joint`` (each teacher's running statistics come
   from its own classes). Measured effects: docs/methods.md.
2. :data:`~.phases.DUAL` (``WORKDIR/dual_1..B``): dual block b, G and earlier blocks frozen,
   reproduces each teacher's prediction (and, with ``joint``, the union's) through the teachers'
   later blocks, from two streams (the image through dual blocks 1..b; G's matching feature through
   block b). BN running statistics come from stream 1 only: what the student computes at test time.
3. Regroup: the dual blocks and the per-teacher heads of block B form a plain ``small_cnn`` over the
   union of classes, in teacher order (:func:`.networks.regroup`).
4. :data:`~.phases.ASSEMBLE` (``WORKDIR/assemble``, ``assemble_steps`` > 0, jka's variant; the paper
   stops at 3): the regrouped student trained end to end (G frozen) with block B's loss; block-wise
   training forces one feature map to serve every teacher's later blocks. The result (of 3 or 4) is
   exported to ``WORKDIR/model``.

The weights α, β, γ and the stream weights are not published; the values chosen here, why, and what
they measured are in docs/methods.md (``datafree_amalgamation.<key>``, defaults in
:class:`.phases.Settings`). A new teacher architecture needs the shapes of its blocks' inputs, a
``start`` argument of its own and a dual block module with the same layout.
"""
