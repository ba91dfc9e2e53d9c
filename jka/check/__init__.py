"""``jka check CONFIG``: rehearse a run at its real shapes before paying for it.

Every phase is built as ``jka train`` builds it (the same method, mesh, shardings and compiled
step) but with random teachers of the configured architectures, a training state drawn at its
shapes and, when the data is not on this machine, random images of its shape (:mod:`.standin`).
One training unit (one step of ``jka train``) of each phase is compiled and, unless
``execute=False``, run. A job (adaptive amalgamation, task branching, NetGraft, data-free
amalgamation, the transfer study) is rehearsed phase by phase, walking the job's own plan (the one
``jka train`` runs) with what it computes between phases from trained networks stood in for: each
phase starts from the (random) model of the phase before it, as in the real job. The report (:mod:`.sizes`,
:mod:`.report`), per phase: parameters of every trained part and of the teachers, the largest
arrays of the state (pools, banks, heads), the compiled step's memory, its FLOPs (counted from the
jaxpr: :mod:`jka.train.flops`), the time of one unit on this machine, and the phase projected here
and on an H100 at the model FLOP utilisation jka measured there for that family (FLOP-bound: a
small model at a small batch is bound by per-step latency instead, so for those the H100 figure is
a lower bound); for a job, the sums over its phases.
"""
from jka.check.rehearsal import rehearse
from jka.check.report import format_report

__all__ = ["format_report", "rehearse"]
