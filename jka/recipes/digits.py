"""Digits configs (scikit-learn's 8×8 handwritten digits, embedded): teachers, knowledge
distillation from one or two teachers (the demo), and the relabelled networks of the transfer zoo.

Digits configs do not crop (``data.augment.crop_pad`` 0): a shift of one pixel moves an 8×8 digit
by an eighth of its size. Measured with the demo (``jka demo``'s config, seeds 0–4, 2-core CPU):
student 0.969–0.991 without a crop, 0.946–0.970 with a 1-pixel black-padded crop.
The CIFAR configs crop as the papers' recipes do (4 pixels of 32, black padding); so does the
few-shot NetGraft digits config (jka.recipes.distill.digits_netgraft), where the crop matters most."""
from __future__ import annotations

import ml_collections

from jka.data.relabel import LABELINGS
from jka.recipes import base_config

DIGITS_HALVES = ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])


def digits_teacher(classes=None, steps: int = 600, arch: str = "small_cnn") -> ml_collections.ConfigDict:
    """A digits classifier trained from labels on ``classes`` (all ten when None)."""
    cfg = base_config()
    cfg.data.classes = None if classes is None else list(classes)
    cfg.model.name = arch
    cfg.train.steps = steps
    return cfg


def digits_kd_student(teacher_specs, steps: int = 800, arch: str = "small_cnn", T: float = 4.0):
    """A 10-class digits student trained only from the teachers' outputs (no labels)."""
    cfg = base_config(algorithm="kd")
    cfg.teachers = teacher_specs
    cfg.model.name = arch
    cfg.loss.update(T=T, alpha=1.0, beta=0.0)
    cfg.train.steps = steps
    return cfg


def teacher_specs(classes_list, archs=None, steps: int = 600, image_size: int = 8, names=None):
    """Teachers trained from labels on each class subset (first, when their workdir is empty), in
    ``WORKDIR/teacher_<a|b|...>[_<arch>]``."""
    specs = []
    for k, classes in enumerate(classes_list):
        arch = archs[k] if archs else "small_cnn"
        cfg = digits_teacher(classes, steps, arch)
        cfg.data.image_size = image_size
        name = names[k] if names else f"teacher_{'abcdefgh'[k]}" + (f"_{arch}" if archs else "")
        specs.append(dict(workdir=name, classes=list(classes), config=cfg))
    return specs


def demo_config():
    """The demo: teacher A on digits 0–4 and B on 5–9 are trained first, then the no-label student."""
    return digits_kd_student(teacher_specs(DIGITS_HALVES))


def single_teacher_kd():
    """Classic distillation with labels: a full-width teacher (all digits) → a half-width student,
    ``0.9 kd(T=4) + 0.1 CE``."""
    cfg = digits_kd_student([dict(workdir="teacher", config=digits_teacher(None, 600))], steps=600)
    cfg.model.kwargs = {"width": 0.5}
    cfg.loss.alpha, cfg.loss.beta, cfg.loss.T = 0.9, 0.1, 4.0
    return cfg


def relabel_config(labeling: str, arch: str = "small_cnn", steps: int = 300, kwargs=None,
                   seed: int = 0) -> ml_collections.ConfigDict:
    """A supervised digits classifier on the labels ``labeling`` gives (``data.relabel``)."""
    cfg = digits_teacher(None, steps, arch)
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
