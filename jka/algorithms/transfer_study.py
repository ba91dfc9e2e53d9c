"""The digits transferability study (SPEC §6) and the relabelled-digits training it needs.

``supervised_relabel`` trains a classifier on the digits with labels mapped by a named *labeling*
(digit identity, parity, ≥5, mod 3, loops, a random partition of the digits, or per-image random
labels). ``transfer_study`` is a job (``is_job = True``): it trains a zoo of such networks (each in
a sub-workdir, reused when already trained), then runs :func:`jka.transfer.study.run_study`.
"""
from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from jka.algorithms.base import Algorithm
from jka.algorithms.supervised import Supervised
from jka.data import load_split
from jka.errors import ConfigError, unknown_choice

# Digits drawn with a closed loop. 4 is counted as open: most of the scikit-learn scans draw it open.
LOOP_DIGITS = (0, 6, 8, 9)


def _digit_map(labeling: str, seed: int) -> np.ndarray | None:
    """Label of each digit 0..9 under ``labeling`` (None for per-image labelings)."""
    d = np.arange(10)
    if labeling == "digit":
        return d
    if labeling == "parity":
        return d % 2
    if labeling == "ge5":
        return (d >= 5).astype(np.int64)
    if labeling == "mod3":
        return d % 3
    if labeling == "loops":
        return np.isin(d, LOOP_DIGITS).astype(np.int64)
    if labeling == "random_partition":
        # A random split of the ten digits into three groups (every group non-empty).
        perm = np.random.default_rng(seed).permutation(10)
        out = np.empty(10, np.int64)
        out[perm] = np.arange(10) % 3
        return out
    return None


LABELINGS = ("digit", "parity", "ge5", "mod3", "loops", "random_partition", "random_labels")
RANDOM_LABEL_CLASSES = 5


def relabel(labeling: str, digits: np.ndarray, split: str = "train", seed: int = 0) -> tuple[np.ndarray, int]:
    """(new labels, number of classes) of the digit labels ``digits`` under ``labeling``.

    ``random_labels`` draws one label per image (seeded by ``seed`` and the split): no function of
    the image predicts it, so a network trained on it learns to memorise.
    """
    if labeling not in LABELINGS:
        raise unknown_choice("labeling (data.relabel)", labeling, LABELINGS)
    lut = _digit_map(labeling, seed)
    if lut is not None:
        return lut[np.asarray(digits)], int(lut.max()) + 1
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    return rng.integers(0, RANDOM_LABEL_CLASSES, len(digits)).astype(np.int64), RANDOM_LABEL_CLASSES


class RelabeledSupervised(Supervised):
    """Supervised training on the digits with labels mapped by ``data.relabel``."""

    name = "supervised_relabel"

    def load_data(self):
        labeling = self.cfg.data.get("relabel", None)
        if labeling is None:
            raise ConfigError("supervised_relabel needs data.relabel, one of " + ", ".join(LABELINGS))
        if self.cfg.data.get("classes", None) is not None:
            raise ConfigError("supervised_relabel uses every image; leave data.classes=None")
        seed = int(self.cfg.data.get("relabel_seed", 0))
        train, test = load_split(self.cfg.data, "train"), load_split(self.cfg.data, "test")
        y_tr, k = relabel(labeling, train.labels, "train", seed)
        y_te, _ = relabel(labeling, test.labels, "test", seed)
        self.train_ds = dataclasses.replace(train, labels=y_tr, num_classes=k)
        self.test_ds = dataclasses.replace(test, labels=y_te, num_classes=k)
        self.student_classes = list(range(k))
        self.mean, self.std = train.mean, train.std

    def export(self, state):
        arch, n, variables, meta = super().export(state)
        return arch, n, variables, {**meta, "relabel": self.cfg.data.relabel,
                                    "relabel_seed": int(self.cfg.data.get("relabel_seed", 0))}


def relabel_config(labeling: str, arch: str = "small_cnn", steps: int = 300, kwargs=None,
                   seed: int = 0) -> ml_collections.ConfigDict:
    """A ``digits_teacher``-style supervised config on the digits relabelled by ``labeling``."""
    from jka.recipes import digits_teacher

    cfg = digits_teacher(None, steps, arch)
    cfg.algorithm = RelabeledSupervised.name
    cfg.data.relabel = labeling
    cfg.data.relabel_seed = seed
    cfg.model.kwargs = dict(kwargs or {})
    cfg.train.log_every = min(50, steps)
    return cfg


def digits_zoo_specs(small_steps: int = 300, wrn_steps: int = 200) -> list[dict]:
    """Ten networks: small_cnn (width 0.5) on seven labelings, wrn16_1 on three."""
    specs = []
    for lab in LABELINGS:
        specs.append(dict(name=f"cnn_{lab}", workdir=f"zoo/cnn_{lab}", task=lab,
                          config=relabel_config(lab, "small_cnn", small_steps, {"width": 0.5})))
    for lab in ("digit", "parity", "mod3"):
        specs.append(dict(name=f"wrn_{lab}", workdir=f"zoo/wrn_{lab}", task=lab,
                          config=relabel_config(lab, "wrn16_1", wrn_steps)))
    return specs


class TransferStudy(Algorithm):
    """A job: build the zoo, then measure how well label-free scores predict real transfer."""

    name = "transfer_study"
    is_job = True
    uses_labels = False

    @classmethod
    def run_job(cls, cfg, workdir: str) -> dict:
        from jka.transfer.study import run_study

        return run_study(cfg, workdir)
