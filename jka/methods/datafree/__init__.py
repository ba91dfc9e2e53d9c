"""Data-free methods: no real image reaches the training step. ``common`` holds what they share (the
synthetic-data student), ``synthesis`` the on-device pools, views and inversion forward pass,
``adversarial`` the one-stage gradient transforms."""
