"""Data-free methods: no real image reaches the training step (``common``, ``synthesis``, ``adversarial``:
what they share)."""
