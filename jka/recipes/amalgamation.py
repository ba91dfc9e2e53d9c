"""Knowledge amalgamation configs: layer-wise, CFL and adaptive amalgamation on the digits and on
Stanford Cars + FGVC-Aircraft, and task branching on procedural scenes and NYUv2."""
from __future__ import annotations

import ml_collections

from jka.algorithms.amalgamation.adaptive import ADAPTIVE_DEFAULTS
from jka.algorithms.amalgamation.branching import BRANCH_DEFAULTS
from jka.algorithms.amalgamation.cfl import CommonFeatureLearning
from jka.algorithms.amalgamation.layerwise import LayerwiseAmalgamation
from jka.recipes import base_config
from jka.recipes.digits import DIGITS_HALVES, teacher_specs

# Adaptive amalgamation on digits: two teachers whose class sets overlap on 3–6.
DIGITS_OVERLAP = ([0, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8, 9])
# The keys each amalgamation algorithm reads from ``amal`` (its defaults).
AMAL_SECTIONS = {"layerwise": LayerwiseAmalgamation.amal_defaults, "cfl": CommonFeatureLearning.amal_defaults,
                 "adaptive": ADAPTIVE_DEFAULTS}


def amal_section(algorithm: str, **kw) -> ml_collections.ConfigDict:
    """The ``amal`` section of ``algorithm`` with every key it reads."""
    return ml_collections.ConfigDict({**AMAL_SECTIONS[algorithm], **kw}, type_safe=False)


def digits_amal_student(algorithm: str, specs, steps: int = 800, arch: str = "small_cnn",
                        image_size: int = 8, **amal) -> ml_collections.ConfigDict:
    """A 10-class digits student amalgamated from ``specs`` with no labels."""
    cfg = base_config(algorithm=algorithm)
    cfg.teachers = specs
    cfg.data.image_size = image_size
    cfg.model.name = arch
    cfg.train.steps = steps
    cfg.amal = amal_section(algorithm, **amal)
    return cfg


def digits_layerwise(steps: int = 800) -> ml_collections.ConfigDict:
    """small_cnn teachers on digits 0–4 / 5–9 → small_cnn student, all three stages hooked."""
    specs = teacher_specs(DIGITS_HALVES, ("small_cnn", "small_cnn"))
    return digits_amal_student("layerwise", specs, steps, layers=["block1", "block2", "block3"],
                               weights=(1.0, 1.0, 1.0))


def digits_cfl(steps: int = 800) -> ml_collections.ConfigDict:
    """Heterogeneous teachers at 16 px (small_cnn on 0–4, wrn16_1 on 5–9) → small_cnn student."""
    specs = teacher_specs(DIGITS_HALVES, ("small_cnn", "wrn16_1"), image_size=16)
    cfg = digits_amal_student("cfl", specs, steps, image_size=16, layers=["block3", "pooled"],
                              weights=(1.0, 10.0, 10.0))
    # Adam: with weights 10 on the unnormalised teacher features, SGD(0.05, momentum 0.9) diverges.
    cfg.optim.update(name="adam", lr=1e-3, weight_decay=0.0)
    return cfg


def digits_adaptive(selection: str = "entropy", steps: int = 600, component_steps: int = 300,
                    teacher_steps=(600, 150)) -> ml_collections.ConfigDict:
    """Overlapping teachers (A: 0–6, a strong small_cnn; B: 3–9, a quarter-width one trained a quarter
    as long: less sure and less accurate on the overlap 3–6, 0.968 there against A's 1.000)."""
    specs = teacher_specs(DIGITS_OVERLAP, ("small_cnn", "small_cnn"))
    for spec, n in zip(specs, teacher_steps):
        spec["config"].train.steps = int(n)
    specs[1]["config"].model.kwargs = {"width": 0.25}
    specs[1]["workdir"] = "teacher_b_small_cnn_w025"
    return digits_amal_student("adaptive", specs, steps, layers=["block3"], selection=selection,
                               component_steps=component_steps)


def cars_aircraft(algorithm: str, data_root: str = "/data", teachers_root: str = "/data/teachers",
                  steps: int = 46300) -> ml_collections.ConfigDict:
    """Two ImageNet-layout ResNet-18 teachers (Stanford Cars, FGVC Aircraft) → one ResNet-18, 224 px.

    The student's label space is cars196's 196 classes followed by the aircraft's 100 variants;
    the training images are the union of both training sets (labels are never used). Settings of
    KamalEngine's comprehensive_classification_{layerwise_amalgamation,common_feature_learning}.py
    (configs/amalgamation/cars_aircraft_reference.toml): Adam 1e-3, wd 1e-4, cosine, batch 32, 100
    epochs of ceil((8144 + 6667) / 32) = 463 steps.
    """
    cfg = base_config(algorithm=algorithm)
    cfg.data.update(name="cars196+fgvc_aircraft", image_size=224, batch_size=32)
    cfg.data.augment.crop_pad = 16  # a stand-in: the reference's RandomResizedCrop(224) has no jka key
    cfg.data.augment.flip = True
    cfg.data.sources = [
        dict(name="cars196", data_dir=f"{data_root}/tfds", train_split="train", test_split="test"),
        dict(folder=f"{data_root}/fgvc_aircraft", train_split="trainval", test_split="test"),
    ]
    cfg.model.name = "resnet18"
    cfg.teachers = [dict(workdir=f"{teachers_root}/cars196_resnet18", classes=list(range(196)), arch="resnet18"),
                    dict(workdir=f"{teachers_root}/fgvc_aircraft_resnet18", classes=list(range(196, 296)),
                         arch="resnet18")]
    cfg.optim.update(name="adam", lr=1e-3, weight_decay=1e-4, schedule="cosine")
    cfg.train.update(steps=steps, eval_every=2000, checkpoint_every=2000)
    if algorithm == "layerwise":
        # The reference hooks every Conv2d; jka hooks its named features, so every one of them.
        cfg.amal = amal_section("layerwise", layers=["stem", "layer1", "layer2", "layer3", "layer4"],
                                weights=(1.0, 1.0, 1.0))
    else:
        # The reference's one feature group is the fc layer's input: the pooled 512-d vector.
        cfg.amal = amal_section("cfl", layers=["pooled"], weights=(1.0, 10.0, 10.0))
    return cfg


# -- dense tasks and task branching ---------------------------------------------------------------------
SCENES_WIDTH = 0.125  # SegNet channels ×0.125 (8..64): small enough for a CPU


def scenes_data(cfg, train_size: int = 2000, test_size: int = 400, num_classes: int = 5, batch_size: int = 32):
    """The procedural scenes (jka.data.scenes) at 32 px, one fixed seed for teachers and student."""
    cfg.data = ml_collections.ConfigDict(dict(
        name="scenes", image_size=32, num_classes=num_classes, train_size=train_size, test_size=test_size,
        scene_seed=0, batch_size=batch_size, classes=None, data_dir=None, augment=dict(crop_pad=0, flip=True)))
    return cfg


def nyuv2_data(cfg, data_dir: str = "/data/nyuv2", batch_size: int = 8):
    """NYUv2 prepared as data_dir/{train,test}.npz (jka.data.scenes documents the layout), 13 classes."""
    cfg.data = ml_collections.ConfigDict(dict(
        name="nyuv2", num_classes=13, data_dir=data_dir, batch_size=batch_size, classes=None,
        augment=dict(crop_pad=0, flip=True)))
    return cfg


def dense_teacher(kind: str, steps: int, width: float, lr: float = 1e-3) -> ml_collections.ConfigDict:
    """A SegNet-VGG16-BN (``width`` × channels) trained from labels for one dense task."""
    cfg = base_config(algorithm="dense_supervised")
    cfg.model.name = "segnet"
    cfg.model.kwargs = {"width": float(width)}
    cfg.dense = ml_collections.ConfigDict(dict(kind=kind, depth_loss="l1"))
    cfg.optim.update(name="adam", lr=lr, weight_decay=0.0)
    cfg.train.steps = steps
    cfg.train.log_every = 100
    return cfg


def scenes_teacher(kind: str, steps: int = 1200, width: float = SCENES_WIDTH, **data) -> ml_collections.ConfigDict:
    return scenes_data(dense_teacher(kind, steps, width, lr=2e-3), **data)


def branch_section(**kw) -> ml_collections.ConfigDict:
    """The ``branch`` section with every key task branching reads (defaults)."""
    return ml_collections.ConfigDict({**BRANCH_DEFAULTS, **kw}, type_safe=False)


def branching_student(specs, steps: int, width: float, lr: float = 1e-3, **branch):
    """The branchy SegNet student of ``specs`` (one teacher per task), no labels."""
    cfg = base_config(algorithm="branching")
    cfg.teachers = specs
    cfg.model.name = "branchy_segnet"
    cfg.model.kwargs = {"width": float(width)}
    cfg.optim.update(name="adam", lr=lr, weight_decay=0.0)
    cfg.train.steps = steps
    cfg.train.log_every = 100
    cfg.branch = branch_section(**branch)
    return cfg


def scenes_branching(steps: int = 1600, teacher_steps: int = 1200, width: float = SCENES_WIDTH,
                     **data) -> ml_collections.ConfigDict:
    """Segmentation + depth teachers on the scenes (trained first into WORKDIR/teacher_*), then the
    branchy student of the same width from both."""
    specs = [dict(workdir="teacher_seg", task="seg", kind="segmentation",
                  config=scenes_teacher("segmentation", teacher_steps, width, **data)),
             dict(workdir="teacher_depth", task="depth", kind="depth",
                  config=scenes_teacher("depth", teacher_steps, width, **data))]
    return scenes_data(branching_student(specs, steps, width), **data)


def nyuv2_branching(data_dir: str = "/data/nyuv2", teachers_root: str = "/data/teachers", steps: int = 10000,
                    teacher_steps: int = 10000, batch_size: int = 16) -> ml_collections.ConfigDict:
    """The paper's setting: full SegNet-VGG16-BN teachers (13-class segmentation, depth) on NYUv2,
    trained first into ``teachers_root`` when missing, and a full-width branchy student. Settings of
    KamalEngine's nyuv2_seg.py / nyuv2_depth.py (teachers: SGD 0.01, momentum 0.9, wd 1e-4) and
    joint_scene_parsing_task_branching.py (student: Adam 1e-4, wd 1e-4), all cosine, batch 16, 200
    epochs of ceil(795 / 16) = 50 steps (configs/amalgamation/nyuv2_reference.toml)."""
    specs = []
    for task, kind in (("seg", "segmentation"), ("depth", "depth")):
        tcfg = nyuv2_data(dense_teacher(kind, teacher_steps, 1.0, lr=1e-2), data_dir, batch_size)
        tcfg.optim.update(name="sgd", momentum=0.9, nesterov=False, weight_decay=1e-4, schedule="cosine")
        specs.append(dict(workdir=f"{teachers_root}/nyuv2_segnet_{task}", task=task, kind=kind, config=tcfg))
    cfg = nyuv2_data(branching_student(specs, steps, 1.0, lr=1e-4), data_dir, batch_size)
    cfg.optim.update(weight_decay=1e-4, schedule="cosine")
    cfg.train.eval_every = 5000
    cfg.train.checkpoint_every = 2000
    return cfg
