"""jax's persistent compilation cache, on by default: a rerun, a resumed run or a sibling run with the
same step loads its compiled programs from disk instead of compiling them again.

``train.compile_cache`` says where: ``"auto"`` (the default) is ``<the workdir's parent>/.jax_cache``, so
the runs of one experiment folder share it (for a local workdir; a bucket workdir has none unless a
directory is named, and ``$JAX_COMPILATION_CACHE_DIR``, when set, wins); a directory puts it there;
``""`` turns it off. jax writes an entry only for a program that took at least
``jax_persistent_cache_min_compile_time_secs`` (1 s by default) to compile.

The cache is trusted code: keep it in a directory only you can write to.
"""
from __future__ import annotations

import logging
import os

import jax
from jax.experimental.compilation_cache import compilation_cache

from jka import paths

log = logging.getLogger("jka")
CACHE_DIR_NAME = ".jax_cache"


def directory(setting: str, workdir: str) -> str | None:
    """Where ``train.compile_cache=setting`` puts the cache of a run in ``workdir`` (None: no cache)."""
    if setting != "auto":
        return setting or None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    if paths.is_remote(workdir):
        return None
    return os.path.join(os.path.dirname(os.path.abspath(os.path.normpath(workdir))), CACHE_DIR_NAME)


def use(setting: str, workdir: str) -> str | None:
    """Point jax's cache at :func:`directory` (this process; the next compilation reads and writes
    there) and return it."""
    where = directory(setting, workdir)
    if where != jax.config.jax_compilation_cache_dir:
        compilation_cache.set_cache_dir(where)
        compilation_cache.reset_cache()  # jax opens its cache once: a new directory needs a fresh start
        if where:
            log.info("compilation cache: %s (train.compile_cache moves it; '' turns it off)", where)
    return where
