"""Datasets: the embedded digits, any tfds image-classification dataset, stacked sources, class
subsets, deterministic step-indexed batching (for exact resume), device-side augmentation, and
sample grids."""
from jka.data.core import ArrayDataset, Batches, select_classes
from jka.data.sources import load_split

__all__ = ["ArrayDataset", "Batches", "select_classes", "load_split"]
