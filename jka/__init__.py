"""jka: knowledge amalgamation, distillation and transferability estimation in JAX/Flax."""

__version__ = "0.1.0"
