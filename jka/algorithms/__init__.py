"""Every algorithm jka trains: ``base`` (the shared student classifier), ``supervised``, ``kd``, and one
package per family: ``amalgamation``, ``distill``, ``datafree``. What a user can name is the registry
in :mod:`jka.run`."""
