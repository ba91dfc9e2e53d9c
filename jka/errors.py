"""Errors a user can cause. Each carries one message that says what to do.

The CLI catches :class:`UserError`, prints its message on one line and exits with code 2.
"""
import re


class UserError(Exception):
    """A problem with the user's input (config, paths, names, checkpoints)."""


class ConfigError(UserError):
    """A config file, key or value is wrong."""


def unknown_choice(kind: str, value, choices) -> ConfigError:
    """`unknown model 'foo'; valid choices: a, b, c`."""
    return ConfigError(f"unknown {kind} {value!r}; valid choices: {', '.join(sorted(map(str, choices)))}")


# -- faults of the machine's resources --------------------------------------------------------------
DISK_FULL_ERRNOS = (28, 122)  # ENOSPC, EDQUOT
UNREACHABLE_WORDS = ("cannot connect to host", "connection refused", "temporary failure in name resolution",
                     "name or service not known", "network is unreachable")
DISK_FULL_WORDS = ("no space left", "disk quota", "failed writing", "error writing", "failed to write")


def resource_fault(err: BaseException) -> str | None:
    """The one line to print for a fault of the machine's resources (a full disk or quota, storage
    that cannot be reached, memory exhausted while compiling or running), or None when ``err`` is not
    one. These come from Python (OSError), TensorStore (orbax's checkpoints), a bucket's client and
    XLA, each in its own words."""
    text = " ".join(str(err).split())
    lowered = text.lower()
    if getattr(err, "errno", None) in DISK_FULL_ERRNOS or (
            "resource_exhausted" in lowered and any(w in lowered for w in DISK_FULL_WORDS)):
        quoted = re.search(r'"(/[^"]+)"', text)
        where = getattr(err, "filename", None) or (quoted.group(1) if quoted else None)
        return (f"the disk is full ({f'writing {where}' if where else text[:160]}); the last complete checkpoint is kept: free space (or raise the quota), "
                "then rerun the same command to resume from it")
    if isinstance(err, ConnectionError) or any(w in lowered for w in UNREACHABLE_WORDS):
        return (f"cannot reach the storage ({text[:160]}); check the network (and the bucket's URL and credentials), "
                "then rerun the same command: a run resumes from its last complete checkpoint")
    if "resource_exhausted" in lowered or "out of memory" in lowered:
        return (f"out of memory: {text[:200]}; lower data.batch_size (or data.image_size), use train.dtype=bfloat16 "
                "or shard the model over more devices (train.mesh), then rerun")
    return None


class QuietResourceFaults:
    """A ``logging.Filter`` that drops the reports libraries log (with their tracebacks, from their
    own threads) for a resource fault the CLI reports itself in one line."""

    def filter(self, record) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not ((exc is not None and resource_fault(exc)) or "RESOURCE_EXHAUSTED" in record.getMessage())


def unraisable_hook(default):
    """A ``sys.unraisablehook`` that drops the "Event loop is closed" errors of a library's futures
    finishing after a failed write ended its loop (they come after a fault already reported)."""

    def hook(unraisable):
        if not (isinstance(unraisable.exc_value, RuntimeError) and "Event loop is closed" in str(unraisable.exc_value)):
            default(unraisable)

    hook.jka = True
    return hook
