"""Digits relabelled by a named *labeling* (``data.relabel``): the tasks of the transferability
study's zoo (digit identity, parity, ≥ 5, mod 3, loops, a random partition of the digits, or
per-image random labels that no function of the image predicts)."""
from __future__ import annotations

import numpy as np

from jka.errors import unknown_choice

# Digits drawn with a closed loop. 4 is counted as open: most of the scikit-learn scans draw it open.
LOOP_DIGITS = (0, 6, 8, 9)
LABELINGS = ("digit", "parity", "ge5", "mod3", "loops", "random_partition", "random_labels")
RANDOM_LABEL_CLASSES = 5


def _digit_map(labeling: str, seed: int) -> np.ndarray | None:
    """Label of each digit 0..9 under ``labeling`` (None for per-image labelings)."""
    d = np.arange(10)
    if labeling == "random_partition":
        # A random split of the ten digits into three groups (every group non-empty).
        out = np.empty(10, np.int64)
        out[np.random.default_rng(seed).permutation(10)] = d % 3
        return out
    return {"digit": d, "parity": d % 2, "ge5": (d >= 5).astype(np.int64), "mod3": d % 3,
            "loops": np.isin(d, LOOP_DIGITS).astype(np.int64)}.get(labeling)


def relabel(labeling: str, digits: np.ndarray, split: str = "train", seed: int = 0) -> tuple[np.ndarray, int]:
    """(new labels, number of classes) of the digit labels ``digits`` under ``labeling``. ``random_labels``
    draws one label per image (seeded by ``seed`` and the split), which a network can only memorise."""
    if labeling not in LABELINGS:
        raise unknown_choice("labeling (data.relabel)", labeling, LABELINGS)
    lut = _digit_map(labeling, seed)
    if lut is not None:
        return lut[np.asarray(digits)], int(lut.max()) + 1
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    return rng.integers(0, RANDOM_LABEL_CLASSES, len(digits)).astype(np.int64), RANDOM_LABEL_CLASSES
