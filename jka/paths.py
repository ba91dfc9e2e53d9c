"""Where a run reads and writes: a local directory or a bucket (``gs://``, ``s3://``), one API.

Every file jka writes into a workdir (config, lock, metrics, summary, exported models, pictures,
job outputs) goes through these functions, which use ``etils.epath``; orbax writes the checkpoints
to the same paths. Paths stay strings (``os.path.join`` keeps ``gs://bucket/dir`` intact).

An object store differs from a file system in three ways that show here:
- writing an object is already whole-or-nothing, so :func:`write` uploads directly (locally it
  writes a temporary file and renames it);
- objects cannot be appended to, so :func:`append` rewrites the object (fine for ``metrics.jsonl``,
  a few hundred bytes per logged step);
- there is no exclusive create, so :func:`create_new` checks, writes, then reads back: two runs
  starting within the same second can both pass (locally, ``O_EXCL`` closes that window).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import threading

from etils import epath

from jka.errors import UserError

# How long the first contact with a bucket may take (JKA_BUCKET_TIMEOUT), before a run refuses to start.
REACH_TIMEOUT_S = float(os.environ.get("JKA_BUCKET_TIMEOUT", "30"))
# Buckets orbax checkpoints into (TensorStore drivers), with the package epath reaches them through.
SCHEMES = {"gs": ("gcsfs", "jka[gcs]"), "s3": ("s3fs", "s3fs")}


def is_remote(path) -> bool:
    """``gs://...``, ``s3://...`` (any ``scheme://``)."""
    return "://" in os.fspath(path)


def check_supported(path: str, flag: str) -> None:
    """Refuse a URL jka cannot write to: a scheme other than gs:// or s3://, or a bucket whose
    file-system package is not installed."""
    if not is_remote(path):
        return
    scheme = os.fspath(path).split("://", 1)[0]
    if scheme not in SCHEMES:
        raise UserError(f"{flag} {path}: jka writes to local paths and to gs:// or s3:// buckets, not "
                        f"{scheme}://; pass one of those (or a mounted file system's path)")
    module, install = SCHEMES[scheme]
    try:
        __import__(module)
    except ImportError:
        raise UserError(f"{flag} {path}: writing to {scheme}:// needs {module}; pip install '{install}'") from None


def check_reachable(path: str, flag: str) -> None:
    """Refuse a bucket path whose store does not answer within :data:`REACH_TIMEOUT_S` seconds (no
    network, a wrong endpoint) or answers with an error: one line, before any work. Without this, a
    client retries for a minute and the run ends in its tracebacks."""
    if not is_remote(path):
        return
    outcome = {}

    def ask():
        try:
            epath.Path(path).exists()
        except Exception as err:  # noqa: BLE001 - each store's client raises its own kinds
            outcome["error"] = err

    asking = threading.Thread(target=ask, daemon=True, name="jka-reach")
    asking.start()
    asking.join(REACH_TIMEOUT_S)
    if asking.is_alive():
        raise UserError(f"{flag} {path}: the bucket did not answer in {REACH_TIMEOUT_S:g} s; check the network (and "
                        "the bucket's URL), then rerun the same command")
    if "error" in outcome:
        err = outcome["error"]
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise UserError(f"{flag} {path}: cannot reach the bucket ({reason}); check the network, the bucket's URL and "
                        "the credentials, then rerun the same command")


def absolute(path: str) -> str:
    """A local path made absolute; a remote one as given."""
    return path if is_remote(path) else os.path.abspath(path)


def isabs(path: str) -> bool:
    return is_remote(path) or os.path.isabs(path)


def exists(path) -> bool:
    return epath.Path(path).exists()


def isfile(path) -> bool:
    p = epath.Path(path)
    return p.exists() and not p.is_dir()


def isdir(path) -> bool:
    return epath.Path(path).is_dir()


def mtime(path) -> float:
    """Seconds since the epoch of the last write to ``path``; 0 if it is gone meanwhile."""
    try:
        return float(epath.Path(path).stat().mtime)
    except (OSError, ValueError):
        return 0.0


def makedirs(path) -> None:
    """Create ``path`` and its parents (buckets have no directories; a no-op there)."""
    epath.Path(path).mkdir(parents=True, exist_ok=True)


def read_text(path) -> str:
    return epath.Path(path).read_text()


def read_bytes(path) -> bytes:
    return epath.Path(path).read_bytes()


def write(path, data: str | bytes) -> None:
    """Write ``path`` whole or not at all (an interrupted write leaves the previous content)."""
    data = data.encode() if isinstance(data, str) else data
    if is_remote(path):
        epath.Path(path).write_bytes(data)
        return
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_json(path):
    return json.loads(read_bytes(path))


def write_json(path, value) -> None:
    """``value`` as indented JSON, written whole or not at all (:func:`write`)."""
    write(path, json.dumps(value, indent=2))


def append(path, text: str) -> None:
    """Add ``text`` at the end of ``path`` (created if missing)."""
    if not is_remote(path):
        with open(path, "a") as f:
            f.write(text)
        return
    p = epath.Path(path)
    p.write_text((p.read_text() if p.exists() else "") + text)


def create_new(path, text: str) -> bool:
    """Create ``path`` holding ``text`` if it does not exist; False if it does (see the module note)."""
    if not is_remote(path):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return True
    p = epath.Path(path)
    if p.exists():
        return False
    p.write_text(text)
    return p.read_text() == text


def remove(path) -> None:
    """Delete the file ``path``; a missing one is not an error."""
    with contextlib.suppress(FileNotFoundError):
        epath.Path(path).unlink()


def listdir(path) -> list[str]:
    """The names of the entries of directory ``path`` (a bucket prefix's next level); [] if it is missing."""
    p = epath.Path(path)
    return sorted(c.name for c in p.iterdir()) if p.is_dir() else []


def rmtree(path) -> None:
    """Delete the directory ``path`` with everything below it; a missing one is not an error."""
    p = epath.Path(path)
    if p.is_dir():
        p.rmtree()


def move_dir(src: str, dst: str) -> None:
    """Move the directory ``src`` to ``dst``, replacing what ``dst`` held."""
    if not is_remote(src):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.move(src, dst)
        return
    s, d = epath.Path(src), epath.Path(dst)
    if d.exists():
        d.rmtree()
    for root, _, files in s.walk():  # a bucket has no rename: copy object by object
        for name in files:
            rel = (root / name).relative_to(s)
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / name).copy(d / rel, overwrite=True)
    s.rmtree()


def save_image(path: str, image) -> None:
    """A PIL image to ``path`` as PNG (also into a bucket)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    write(path, buf.getvalue())


def save_figure(path: str, fig, **kwargs) -> None:
    """A matplotlib Figure to ``path`` (the format from the extension)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=os.path.splitext(path)[1].lstrip(".") or "png", **kwargs)
    write(path, buf.getvalue())
