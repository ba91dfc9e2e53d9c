"""The configs shipped with jka, one file per experiment family (``get_config(**variant)``), runnable by
name after any install: ``jka train digits/kd --workdir runs/kd``; ``jka configs`` lists them with
their variants, ``jka configs digits/kd`` shows every value of one. ``common`` holds what several
share."""
