"""Data-free configs: the generator methods (DAFL, ZSKT, DFAD, DFQ), model inversion (DeepInversion,
CMI), the DCGAN, and data-free amalgamation, on the digits and on CIFAR-10."""
from __future__ import annotations

import ml_collections

from jka.algorithms.datafree.amalgamation.phases import DEFAULTS as AMALGAMATION_DEFAULTS
from jka.algorithms.datafree.cmi import CMI_DEFAULTS
from jka.algorithms.datafree.gan import GAN_DEFAULTS
from jka.algorithms.datafree.generator import DATAFREE_DEFAULTS, DAFL, DFAD, DFQ, ZSKT
from jka.algorithms.datafree.inversion import DEEPINVERSION_DEFAULTS
from jka.errors import unknown_choice
from jka.recipes import base_config
from jka.recipes.digits import DIGITS_HALVES, digits_teacher

GENERATOR_METHODS = {cls.name: cls for cls in (DAFL, ZSKT, DFAD, DFQ)}
SYNTHESIS_DEFAULTS = {"deepinversion": DEEPINVERSION_DEFAULTS, "cmi": CMI_DEFAULTS}
# The reference CIFAR-10 pairs: name → (teacher arch, student arch).
CIFAR10_PAIRS = {
    "resnet34_resnet18": ("cifar_resnet34", "cifar_resnet18"),
    "wrn40_2_wrn16_1": ("wrn40_2", "wrn16_1"),
    "wrn40_2_wrn40_1": ("wrn40_2", "wrn40_1"),
    "wrn40_2_wrn16_2": ("wrn40_2", "wrn16_2"),
}


def digits_teacher_spec(workdir: str = "teacher"):
    """The digits teacher (small_cnn, all ten classes, ≥ 0.97), trained first when ``workdir`` is empty.

    A relative ``workdir`` is inside the run's workdir; pass an absolute one to share a teacher."""
    return [dict(workdir=workdir, config=digits_teacher())]


def generator_config(algorithm: str, **datafree) -> ml_collections.ConfigDict:
    """``base_config`` with the ``datafree`` section and the generator-loss weights of ``algorithm``."""
    if algorithm not in GENERATOR_METHODS:
        raise unknown_choice("generator method", algorithm, GENERATOR_METHODS)
    cfg = base_config(algorithm=algorithm)
    cfg.loss.update(dict(GENERATOR_METHODS[algorithm].loss_weights))
    cfg.datafree = ml_collections.ConfigDict(DATAFREE_DEFAULTS)
    cfg.datafree.update(datafree)
    return cfg


def digits_datafree(algorithm: str, steps: int, kd_steps: int = 5, g_steps: int = 1, T: float = 1.0,
                    student_width: float = 0.5, **datafree) -> ml_collections.ConfigDict:
    """A generator-based data-free run on 8×8 digits: teacher small_cnn → student small_cnn(width)."""
    # Digits-specific choices (measured on a shared 2-core CPU, DFAD, 100 units): batch 64 rather
    # than 32 covers more of the teacher's classes per step (mode collapse is what caps these
    # games at ~0.5); an 8×8 generator needs few channels (ngf 16: 64→32→16, ~4× fewer MACs than
    # ngf 32; not separately ablated); student SGD lr 0.1 (as the DFAD reference) and generator Adam
    # lr 5e-3 (0.635 vs 0.609 at lr 1e-3 after 100 units: the generator moves between classes faster).
    cfg = generator_config(algorithm, nz=64, ngf=16, kd_steps=kd_steps, g_steps=g_steps)
    cfg.datafree.g_optim.lr = 5e-3
    cfg.datafree.update(datafree)
    cfg.teachers = digits_teacher_spec()
    cfg.model.name = "small_cnn"
    cfg.model.kwargs = dict(width=student_width)
    cfg.data.batch_size = 64
    cfg.loss.T = T
    cfg.optim.lr = 0.1
    cfg.optim.weight_decay = 5e-4
    cfg.train.update(steps=steps, log_every=25, eval_every=50)
    return cfg


def cifar10_pair(cfg, pair: str):
    """CIFAR-10 data, the pair's student, and its teacher: an exported model at ``../c10_<teacher
    arch>`` next to the run's workdir (a jka run or a converted PyTorch checkpoint)."""
    if pair not in CIFAR10_PAIRS:
        raise unknown_choice("CIFAR-10 pair", pair, CIFAR10_PAIRS)
    teacher, student = CIFAR10_PAIRS[pair]
    cfg.teachers = [dict(workdir=f"../c10_{teacher}", classes=list(range(10)))]
    cfg.data.update(name="cifar10", image_size=32, batch_size=256)
    cfg.model.name = student
    return cfg


def cifar10_generator(algorithm: str, pair: str) -> ml_collections.ConfigDict:
    """A generator method on a CIFAR-10 pair: 2,000 units of 1 generator + 5 student steps (ZSKT 10)."""
    cfg = cifar10_pair(generator_config(algorithm, kd_steps=10 if algorithm == "zskt" else 5, g_steps=1), pair)
    cfg.optim.update(name="sgd", lr=0.1, weight_decay=5e-4, schedule="cosine")
    cfg.loss.T = 1.0
    cfg.train.update(steps=2000, log_every=20, eval_every=200, checkpoint_every=200)
    return cfg


def inversion_config(algorithm: str, rounds: int, teacher_spec: dict | None = None, student: str = "small_cnn",
                     student_kwargs=None, **synthesis) -> ml_collections.ConfigDict:
    """A DeepInversion/CMI config: ``rounds`` loop steps, each one synthesis round + its student steps."""
    if algorithm not in SYNTHESIS_DEFAULTS:
        raise unknown_choice("inversion method", algorithm, SYNTHESIS_DEFAULTS)
    cfg = base_config(algorithm=algorithm)
    cfg.teachers = [teacher_spec] if teacher_spec else []
    cfg.model.name = student
    cfg.model.kwargs = dict(student_kwargs or {})
    cfg.loss.T = 20.0
    cfg.train.steps = rounds
    cfg.train.log_every = max(1, rounds // 20)
    cfg.synthesis = ml_collections.ConfigDict({**SYNTHESIS_DEFAULTS[algorithm], **synthesis})
    return cfg


def digits_inversion(algorithm: str):
    """DeepInversion (25 rounds of 60 pixel steps) or CMI (12 rounds of 40 generator steps) on digits,
    teacher small_cnn → student small_cnn width 0.5, 60 student steps per round, batch 64."""
    teacher = dict(workdir="teacher", config=digits_teacher())
    if algorithm == "deepinversion":
        cfg = inversion_config("deepinversion", 25, teacher, "small_cnn", dict(width=0.5),
                               steps=60, lr=0.1, jitter=1, flip=False, kd_steps=60, pool_size=64 * 25,
                               student_crop_pad=1, student_flip=False)
    else:
        cfg = inversion_config("cmi", 12, teacher, "small_cnn", dict(width=0.5),
                               steps=40, lr_g=1e-3, nz=64, ngf=32, crop_pad=1, flip=False, kd_steps=60,
                               pool_size=64 * 12, bank_size=4096, negatives=512,
                               student_crop_pad=1, student_flip=False)
    cfg.data.batch_size = 64
    cfg.optim.lr = 0.05
    return cfg


def cifar10_inversion(method: str, pair: str) -> ml_collections.ConfigDict:
    """DeepInversion/CMI on a CIFAR-10 pair: 200 rounds; each: 256 images synthesized (DeepInversion:
    1000 pixel steps, jitter 4 + flip; CMI: 200 generator steps, bank 40960, 4096 negatives), then 400
    student SGD steps (lr 0.1, cosine, batch 256) with kd T=20 on the uint8 pool (all 51,200 images)."""
    rounds = 200
    syn = dict(steps=1000, jitter=4) if method == "deepinversion" else dict(steps=200, crop_pad=4)
    syn.update(kd_steps=400, pool_size=256 * rounds, pool_dtype="uint8", flip=True, student_crop_pad=4,
               student_flip=True)
    cfg = cifar10_pair(inversion_config(method, rounds, **syn), pair)
    cfg.optim.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine")
    cfg.train.update(log_every=5, eval_every=20, checkpoint_every=20)
    return cfg


def digits_gan(loss: str = "asymmetric", one_stage: bool = True, steps: int = 2000, d_norm: str = "group"):
    """A DCGAN on 8×8 digits (real images feed only the discriminator)."""
    cfg = base_config(algorithm="gan")
    cfg.data.batch_size = 64
    cfg.train.update(steps=steps, log_every=100, eval_every=500)
    cfg.gan = ml_collections.ConfigDict(GAN_DEFAULTS)
    cfg.gan.loss, cfg.gan.one_stage, cfg.gan.d_norm = loss, one_stage, d_norm
    cfg.gan.ngf = cfg.gan.ndf = 32  # 8×8 images need little capacity
    return cfg


def digits_amalgamation(gan_steps: int = 1000, dual_steps: int = 300, width: float = 0.5, batch_size: int = 64):
    """Two digits teachers (0–4, 5–9; small_cnn of ``width``, trained first from real digits) → one
    10-class small_cnn of the same width, no real image seen by the generator or the student."""
    cfg = base_config(algorithm="datafree_amalgamation")
    cfg.teachers = []
    for n, c in zip("ab", DIGITS_HALVES):
        tcfg = digits_teacher(c)
        tcfg.model.kwargs = dict(width=width)
        cfg.teachers.append(dict(workdir=f"teacher_{n}", classes=list(c), config=tcfg))
    cfg.model.name = "small_cnn"
    cfg.model.kwargs = dict(width=width)
    cfg.amalgamation = ml_collections.ConfigDict({**AMALGAMATION_DEFAULTS, "gamma": 0.0, "gan_steps": gan_steps,
                                                  "dual_steps": dual_steps, "batch_size": batch_size})
    cfg.train.log_every = 100
    return cfg
