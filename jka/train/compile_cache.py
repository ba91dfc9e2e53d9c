"""jax's persistent compilation cache, on by default: a rerun, a resumed run or a sibling run with the
same step loads its compiled programs from disk. ``train.compile_cache``: ``"auto"`` (the default) is
``<the workdir's parent>/.jax_cache``, shared by one experiment folder's runs (a bucket workdir has none;
``$JAX_COMPILATION_CACHE_DIR`` wins), a directory puts it there, ``""`` turns it off. jax writes only
programs that took ``jax_persistent_cache_min_compile_time_secs`` (1 s) or more to compile.

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
    """Point this process's jax cache at :func:`directory` and return it."""
    where = directory(setting, workdir)
    if where != jax.config.jax_compilation_cache_dir:
        compilation_cache.set_cache_dir(where)
        compilation_cache.reset_cache()  # jax opens its cache once: a new directory needs a fresh start
        if where:
            log.info("compilation cache: %s (train.compile_cache moves it; '' turns it off)", where)
    return where
