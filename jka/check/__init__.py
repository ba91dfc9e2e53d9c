"""``jka check CONFIG``: rehearse a run at its real shapes before paying for it.

Every phase is built as ``jka train`` builds it (method, mesh, shardings, compiled step) but with
random teachers of the configured architectures, a state drawn at its shapes and, where the data is
not on this machine, random images of its shape (:mod:`.standin`); one unit (one step of ``jka
train``) of each is compiled and, unless ``execute=False``, run. A job is rehearsed along its own
plan, what it computes between phases from trained networks stood in for, each phase starting from
the (random) model of the one before. The report, per phase: the parameters of every trained part
and of the teachers, the state's largest arrays, the compiled step's memory, its FLOPs, the time of
one unit here, and the phase projected here and on an H100 at the MFU jka measured there for that
family (FLOP-bound, so a lower bound for small steps); for a job, the sums over its phases.
"""
from jka.check.rehearsal import rehearse
from jka.check.report import format_report

__all__ = ["format_report", "rehearse"]
