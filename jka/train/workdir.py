"""A run's workdir (a local directory or a bucket, :mod:`jka.paths`): writable, used by one run at a
time, and bound to one config.

- :func:`check_writable` refuses a workdir that is a file or cannot be written, before any work.
- :func:`lock` holds ``WORKDIR/jka.lock`` (host, pid, start time); a second run is refused with the
  holder's name, a lock whose process is gone (same host, dead pid; or a requeued SLURM job) is
  taken over with a warning.
- :func:`write_config` records the resolved config in ``WORKDIR/config.json``; :func:`check_config`
  refuses a rerun with another config, naming the keys that differ, unless they are in
  ``allow_changed`` (e.g. ``train.steps``) or only change how a run is watched (``OPERATIONAL``). A
  changed config replaces the recorded one only once its run has finished.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import time

import jax
import ml_collections
from etils import epath

from jka import paths
from jka.errors import UserError

log = logging.getLogger("jka")

CONFIG_FILE = "config.json"
LOCK_FILE = "jka.lock"
# How a run is watched and where it reads from, not what it computes.
OPERATIONAL = ("train.progress", "train.log_every", "train.eval_every", "train.checkpoint_every",
               "train.keep_checkpoints", "data.read_workers", "data.reader", "data.in_memory", "data.data_dir")


def check_writable(workdir: str, create: bool = True, flag: str = "--workdir") -> None:
    """Refuse an empty path, a file, or a directory that cannot be written (``create``: make it first)."""
    check_location(workdir, flag)
    check_directory(workdir, create, flag)


def check_directory(workdir: str, create: bool = True, flag: str = "--workdir") -> None:
    """:func:`check_writable` for a path :func:`check_location` has passed."""
    if paths.isfile(workdir):
        raise UserError(f"{flag} {workdir} is a file, not a directory; pass a directory path")
    _probe(workdir, flag, create, "pass a writable directory")


def check_location(workdir: str, flag: str = "--workdir") -> None:
    """Refuse an empty path, a URL jka cannot write to, or a bucket that does not answer."""
    check_named(workdir, flag)
    paths.check_supported(workdir, flag)
    paths.check_reachable(workdir, flag)


def check_output_dir(path: str, flag: str = "--out") -> None:
    """:func:`check_writable` for an output directory, which is not created (the results come last)."""
    check_writable(path, create=False, flag=flag) if paths.exists(path) else check_named(path, flag)


def check_named(workdir, flag: str = "--workdir") -> None:
    """Refuse an empty or blank directory path (it would mean the current directory)."""
    if not str(workdir or "").strip():
        raise UserError(f"{flag} is empty; name the directory, e.g. {flag} runs/kd")


def _probe(directory: str, flag: str, create: bool, what_to_do: str) -> None:
    try:
        if create:
            paths.makedirs(directory)
        probe = os.path.join(directory, f".jka_write_test_{socket.gethostname()}_{os.getpid()}")
        paths.write(probe, b"")
        paths.remove(probe)
    except Exception as err:  # noqa: BLE001 - OSError locally; a bucket's client raises its own kinds
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0][:200] or type(err).__name__
        raise UserError(f"cannot write to {flag} {directory} ({reason}); {what_to_do}") from None


def check_output_file(path: str, flag: str = "--out") -> None:
    """Refuse an output file whose directory is missing or read-only, or that is a directory."""
    paths.check_supported(path, flag)
    paths.check_reachable(path, flag)
    if paths.isdir(path):
        raise UserError(f"{flag} {path} is a directory; pass a file path such as {os.path.join(path, 'result.json')}")
    if paths.is_remote(path):
        _probe(os.path.dirname(path), flag, create=False, what_to_do="pass another path")
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UserError(f"{flag} {path}: the directory {parent} does not exist; create it first or pass another path")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{flag} {path}: the directory {parent} is not writable; pass another path")


# -- one run per workdir ----------------------------------------------------------------------------
def _holder(path: str) -> dict:
    try:
        return paths.read_json(path)
    except (OSError, ValueError):
        return {}


def _gone(holder: dict) -> bool:
    """Whether the run that wrote ``holder`` can no longer be running."""
    job = os.environ.get("SLURM_JOB_ID")
    if job and holder.get("slurm_job") == job:
        return True  # this job was requeued: the holder was its earlier run
    if holder.get("host") != socket.gethostname():
        return False  # a process on another host cannot be checked from here
    try:
        os.kill(int(holder.get("pid", -1)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False


@contextlib.contextmanager
def lock(workdir: str):
    """Hold ``WORKDIR/jka.lock`` while the block runs (process 0 only; in a bucket it is checked and
    written, not created exclusively)."""
    path = os.path.join(workdir, LOCK_FILE)
    if jax.process_index() != 0:
        yield
        return
    me = {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": os.environ.get("SLURM_JOB_ID"),
          "started": datetime.datetime.now().isoformat(timespec="seconds")}
    for _ in range(100):
        if not paths.create_new(path, json.dumps(me)):
            holder = _holder(path)
            if holder.get("host") == me["host"] and holder.get("pid") == me["pid"]:
                yield  # this process holds it already (a job's phase)
                return
            if not holder and time.time() - paths.mtime(path) < 10:
                time.sleep(0.1)  # being written right now
                continue
            if not holder or _gone(holder):
                log.warning("taking over the lock of a run that is no longer running (%s)", holder or "unreadable")
                paths.remove(path)
                continue
            raise UserError(
                f"{workdir} is in use by another jka run (host {holder.get('host')}, pid {holder.get('pid')}, "
                f"since {holder.get('started')}); wait for it to end or use another --workdir (if that run "
                f"is gone, delete {path})") from None
        break
    else:
        raise UserError(f"could not take the lock {path}; delete it if no jka run uses {workdir}")
    try:
        yield
    finally:
        if _holder(path).get("pid") == me["pid"]:
            paths.remove(path)


# -- the run's config -------------------------------------------------------------------------------
def plain(value):
    """A config as JSON types (ConfigDicts → dicts, tuples → lists)."""
    if isinstance(value, ml_collections.ConfigDict):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def flatten(tree, prefix: str = "") -> dict:
    """``{'train.steps': 100, 'teachers.0.workdir': 'a', ...}``."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else None
    if items is None or not tree:
        return {prefix[:-1]: tree}
    out = {}
    for k, v in items:
        out.update(flatten(v, f"{prefix}{k}."))
    return out


def differences(old: dict, new: dict) -> list[str]:
    """The dotted keys whose values differ (operational keys, at any depth, left out; ``model.kwargs``
    going from ``{}`` to ``{'width': 0.5}`` is ``model.kwargs.width``)."""
    a, b = flatten(plain(old)), flatten(plain(new))
    keys = {k for k in set(a) | set(b) if a.get(k, UNSET) != b.get(k, UNSET) and not k.endswith(OPERATIONAL)}
    return sorted(k for k in keys if not any(other.startswith(k + ".") for other in keys))


UNSET = "<unset>"


def read_config(workdir: str) -> dict | None:
    path = os.path.join(workdir, CONFIG_FILE)
    if not paths.isfile(path):
        return None
    try:
        saved = paths.read_json(path)
    except ValueError as err:
        raise UserError(f"{path} is not valid JSON ({err}); delete it to record the config anew") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise UserError(f"{path} is not the config.json of a jka run; move it away or use another --workdir")
    return saved


def check_config(cfg, workdir: str, allow_changed=()) -> list[str]:
    """The keys in which ``cfg`` differs from the workdir's ``config.json`` (none for a new workdir);
    a difference not named in ``allow_changed`` (a key or a section above it) is refused."""
    old = read_config(workdir)
    if old is None:
        return []
    diffs = differences(old["config"], cfg)
    if diffs and not trained(workdir):  # the walk only when it decides something
        log.info("%s holds the config of a run that never trained a step: it is replaced", workdir)
        return []
    before, after = flatten(plain(old["config"])), flatten(plain(cfg))
    refused = [k for k in diffs if not any(k == a or k.startswith(a + ".") for a in allow_changed)]
    if refused:
        k = refused[0]
        more = f" (and {len(refused) - 1} more: {', '.join(refused[1:4])})" if len(refused) > 1 else ""
        raise UserError(
            f"{workdir} holds a run of another config: {k} was {before.get(k, UNSET)!r}, now "
            f"{after.get(k, UNSET)!r}{more}; rerun with the same config, add --allow-changed "
            f"{','.join(refused)} to continue with the new values, or use another --workdir")
    for k in diffs:
        log.info("config change allowed: %s %r -> %r", k, before.get(k, UNSET), after.get(k, UNSET))
    return diffs


def trained(workdir: str) -> bool:
    """Whether a run in ``workdir`` got anywhere: a checkpoint, an exported model or a summary in it or
    in a phase's directory below it."""
    below = [epath.Path(workdir)]  # walked level by level (a bucket has no recursive glob)
    while below:
        directory = below.pop()
        if not directory.is_dir():
            continue
        for p in directory.iterdir():
            if p.name in ("summary.json", "model.json") or directory.name == "checkpoints":
                return True
            below.append(p)
    return False


def write_config(cfg, workdir: str, source: str | None = None) -> None:
    """Process 0 writes ``cfg`` (resolved) to ``WORKDIR/config.json``."""
    log.info("config %s, resolved in %s", source or "(built in Python)", os.path.join(workdir, CONFIG_FILE))
    if jax.process_index() == 0:
        paths.write_json(os.path.join(workdir, CONFIG_FILE), {"config": plain(cfg), "source": source})


@contextlib.contextmanager
def as_found_on_refusal(workdir: str):
    """A run refused (a :class:`UserError`) before its first checkpoint leaves ``workdir`` as it found
    it: every entry it created is removed, but a network it trained on the way (work done, not a
    trace of the refusal), and so is the workdir when the run created it and it is left empty. A
    workdir that held a run's work (checkpoints, a model) is left alone: what a refused resume moved
    aside is the user's. Only process 0 removes."""
    check_location(workdir)  # before the first look into it
    first = jax.process_index() == 0
    existed = first and paths.isdir(workdir)
    fresh = first and not (existed and trained(workdir))  # a workdir holding a run's work is never cleaned
    before = set(paths.listdir(workdir)) if existed else set()
    try:
        yield
    except UserError:
        if fresh and paths.isdir(workdir) and not trained(os.path.join(workdir, "checkpoints")):
            for name in set(paths.listdir(workdir)) - before:
                path = os.path.join(workdir, name)
                if not paths.isdir(path):
                    paths.remove(path)
                elif not trained(path):
                    paths.rmtree(path)
            if not existed and not paths.listdir(workdir):
                paths.rmtree(workdir)
        raise
