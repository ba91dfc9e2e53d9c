"""Datasets: the embedded digits, any tfds image-classification dataset, class subsets,
deterministic step-indexed batching (for exact resume) and device-side augmentation."""
from jka.data.core import ArrayDataset, Batches, select_classes
from jka.data.sources import load_split, load_train_test

__all__ = ["ArrayDataset", "Batches", "select_classes", "load_split", "load_train_test"]
