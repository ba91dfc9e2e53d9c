"""Errors a user can cause. Each carries one message that says what to do.

The CLI catches :class:`UserError`, prints its message on one line and exits with code 2.
"""


class UserError(Exception):
    """A problem with the user's input (config, paths, names, checkpoints)."""


class ConfigError(UserError):
    """A config file, key or value is wrong."""


def unknown_choice(kind: str, value, choices) -> ConfigError:
    """`unknown model 'foo'; valid choices: a, b, c`."""
    return ConfigError(f"unknown {kind} {value!r}; valid choices: {', '.join(sorted(map(str, choices)))}")
