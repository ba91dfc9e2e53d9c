"""Config builders for knowledge amalgamation (SPEC §3.1–3.3), shared by configs/amalgamation/."""
from __future__ import annotations

import ml_collections

from jka.recipes import DIGITS_HALVES, base_config, digits_teacher

# Adaptive amalgamation on digits: two teachers whose class sets overlap on 3–6.
DIGITS_OVERLAP = ([0, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8, 9])


def amal_section(**kw) -> ml_collections.ConfigDict:
    """The ``amal`` section with every key the amalgamation algorithms read (defaults)."""
    amal = dict(layers=["block3"], teacher_layers=None, weights=(1.0, 1.0, 1.0), T=1.0, schedule="joint",
                ch_ratio=0.25, selection="entropy", subtasks=None, component=None, component_steps=None,
                overlap_classes=None, calibration=None)
    amal.update(kw)
    return ml_collections.ConfigDict(amal, type_safe=False)


def digits_teacher_specs(classes_list, archs, steps: int = 600, image_size: int = 8, prefix: str = "teacher"):
    """Teachers trained from labels on each class subset (first, when their workdir is empty)."""
    specs = []
    for name, classes, arch in zip("abcdefgh", classes_list, archs):
        cfg = digits_teacher(classes, steps, arch)
        cfg.data.image_size = image_size
        specs.append(dict(workdir=f"{prefix}_{name}_{arch}", classes=list(classes), config=cfg))
    return specs


def digits_amal_student(algorithm: str, teacher_specs, steps: int = 800, arch: str = "small_cnn",
                        image_size: int = 8, **amal) -> ml_collections.ConfigDict:
    """A 10-class digits student amalgamated from ``teacher_specs`` with no labels."""
    cfg = base_config(algorithm=algorithm)
    cfg.teachers = teacher_specs
    cfg.data.augment.crop_pad = 1
    cfg.data.image_size = image_size
    cfg.model.name = arch
    cfg.train.steps = steps
    cfg.amal = amal_section(**amal)
    return cfg


def digits_layerwise(steps: int = 800) -> ml_collections.ConfigDict:
    """small_cnn teachers on digits 0–4 / 5–9 → small_cnn student, all three stages hooked."""
    specs = digits_teacher_specs(DIGITS_HALVES, ("small_cnn", "small_cnn"))
    return digits_amal_student("layerwise", specs, steps, layers=["block1", "block2", "block3"],
                               weights=(1.0, 1.0, 1.0))


def digits_cfl(steps: int = 800) -> ml_collections.ConfigDict:
    """Heterogeneous teachers at 16 px (small_cnn on 0–4, wrn16_1 on 5–9) → small_cnn student."""
    specs = digits_teacher_specs(DIGITS_HALVES, ("small_cnn", "wrn16_1"), image_size=16)
    cfg = digits_amal_student("cfl", specs, steps, image_size=16, layers=["block3", "pooled"],
                              weights=(1.0, 10.0, 10.0))
    # Adam: with weights 10 on the unnormalised teacher features, SGD(0.05, momentum 0.9) diverges.
    cfg.optim.name = "adam"
    cfg.optim.lr = 1e-3
    cfg.optim.weight_decay = 0.0
    return cfg


def digits_adaptive(selection: str = "entropy", steps: int = 600, component_steps: int = 300,
                    teacher_steps=(600, 60)) -> ml_collections.ConfigDict:
    """Overlapping teachers (A: 0–6, a strong small_cnn; B: 3–9, a small, briefly trained one)."""
    specs = digits_teacher_specs(DIGITS_OVERLAP, ("small_cnn", "small_cnn"))
    for spec, n in zip(specs, teacher_steps):
        spec["config"].train.steps = int(n)
    specs[1]["config"].model.kwargs = {"width": 0.25}
    specs[1]["workdir"] = "teacher_b_small_cnn_w025"
    cfg = digits_amal_student("adaptive", specs, steps, layers=["block3"], selection=selection,
                              component_steps=component_steps)
    return cfg


def cars_aircraft(algorithm: str, data_root: str = "/data", teachers_root: str = "/data/teachers",
                  steps: int = 30000) -> ml_collections.ConfigDict:
    """Two ImageNet-layout ResNet-18 teachers (Stanford Cars, FGVC Aircraft) → one ResNet-18, 224 px.

    The student's label space is cars196's 196 classes followed by the aircraft's 100 variants;
    the training images are the union of both training sets (labels are never used).
    """
    cfg = base_config(algorithm=algorithm)
    cfg.data.name = "cars196+fgvc_aircraft"
    cfg.data.image_size = 224
    cfg.data.batch_size = 64
    cfg.data.augment.crop_pad = 16
    cfg.data.augment.flip = True
    cfg.data.sources = [
        dict(name="cars196", data_dir=f"{data_root}/tfds", train_split="train", test_split="test"),
        dict(folder=f"{data_root}/fgvc_aircraft", train_split="trainval", test_split="test"),
    ]
    cfg.model.name = "resnet18"
    cfg.teachers = [dict(workdir=f"{teachers_root}/cars196_resnet18", classes=list(range(196))),
                    dict(workdir=f"{teachers_root}/fgvc_aircraft_resnet18", classes=list(range(196, 296)))]
    cfg.optim.name = "adam"
    cfg.optim.lr = 1e-4
    cfg.optim.weight_decay = 1e-4
    cfg.optim.schedule = "cosine"
    cfg.train.steps = steps
    cfg.train.eval_every = 2000
    cfg.train.checkpoint_every = 2000
    if algorithm == "layerwise":
        cfg.amal = amal_section(layers=["layer2", "layer3", "layer4"], weights=(1.0, 1.0, 1.0))
    else:
        cfg.amal = amal_section(layers=["layer4"], weights=(1.0, 10.0, 10.0))
    return cfg
