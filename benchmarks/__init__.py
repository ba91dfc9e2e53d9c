"""Benchmarks of jka against PyTorch (``python -m benchmarks.throughput --help``)."""
