"""Every method a config may name (``algorithm=...``, :class:`~jka.methods.api.Method`): one file each,
collected here. Phases internal to a job (a component net, a dual block) are methods of that job's file,
not named here. Adding a method: its file, and one line below.
"""
from __future__ import annotations

from jka.errors import unknown_choice
from jka.methods import kd, supervised, transfer_study
from jka.methods.amalgamation import adaptive, branching, cfl, dense_supervised, layerwise
from jka.methods.api import Method
from jka.methods.datafree import cmi, dafl, deepinversion, dfad, dfq, gan, zskt
from jka.methods.datafree.amalgamation import job as datafree_amalgamation
from jka.methods.distill import crd, dist, dkd, ffl, netgraft, reviewkd, zoo

METHODS: dict[str, Method] = {m.name: m for m in (
    # from labels
    supervised.METHOD,
    dense_supervised.METHOD,
    # distillation and amalgamation from teachers, on real images
    kd.METHOD,
    zoo.METHOD,
    dist.METHOD,
    crd.METHOD,
    dkd.METHOD,
    reviewkd.METHOD,
    ffl.METHOD,
    netgraft.METHOD,
    layerwise.METHOD,
    cfl.METHOD,
    adaptive.METHOD,
    branching.METHOD,
    # data-free
    dafl.METHOD,
    zskt.METHOD,
    dfad.METHOD,
    dfq.METHOD,
    deepinversion.METHOD,
    cmi.METHOD,
    gan.METHOD,
    datafree_amalgamation.METHOD,
    # transferability
    transfer_study.METHOD,
)}

def names() -> list[str]:
    return sorted(METHODS)


def get(name: str) -> Method:
    """The method called ``name`` (a ConfigError listing the others when there is none)."""
    if name not in METHODS:
        raise unknown_choice("algorithm", name, names())
    return METHODS[name]
