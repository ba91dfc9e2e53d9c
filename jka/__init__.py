"""jka: knowledge amalgamation, distillation and transferability estimation in JAX/Flax."""
from importlib import metadata as _metadata

# The one version number lives in pyproject.toml; an installed jka (also `pip install -e .`) reports it.
try:
    __version__ = _metadata.version("jka")
except _metadata.PackageNotFoundError:  # the source tree on sys.path without an install
    __version__ = "0+unknown"
