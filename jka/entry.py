"""The ``jka`` command's entry point (``python -m jka`` too).

It installs a SIGTERM handler before anything slow happens: importing jax and the CLI, then checking
the config. A SIGTERM in that window (SLURM's or a scheduler's stop) ends in one line with the
requeue code 75, the same as a stop during training, not 143: the scheduler requeues the job and
the rerun starts (or resumes) as if nothing had happened. Once a run starts, :mod:`jka.train.preemption`
takes SIGTERM over and stops at a step boundary with a checkpoint.

The command line is parsed first, by :mod:`jka.parser` (the standard library only): ``jka --help``,
``jka CMD --help`` and a usage error answer without importing jax, flax or tfds. Only a command that
runs imports :mod:`jka.cli` (and with it jax); it parses the same arguments again.
"""
import signal
import sys

from jka import xla_flags
from jka.parser import parse

EXIT_CODE = 75  # jka.train.preemption.EXIT_CODE, not imported: that module imports jax


class StoppedEarly(SystemExit):
    """A SIGTERM before the run started."""


def _stop(signum, frame):
    print("jka: stopped by SIGTERM before training started; run the same command again", file=sys.stderr)
    raise StoppedEarly(EXIT_CODE)


def main(argv=None) -> int:
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _stop)
    parse(argv)  # --help, --version and usage errors end here, before any heavy import
    xla_flags.apply()  # before jax starts its backends
    from jka.cli import main as cli_main

    return cli_main(argv)
