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
    # The generator's lr decays (cosine) here, unlike the reference harness's constant lr: on the digits
    # (400 units, 2-core CPU, seed 0) a constant one collapses the adversarial games: DFAD 0.148 (cosine
    # 0.680), ZSKT 0.461 (0.650); DAFL 0.754 (0.806), DFQ 0.965 (0.974).
    cfg = generator_config(algorithm, nz=64, ngf=16, kd_steps=kd_steps, g_steps=g_steps)
    cfg.datafree.g_optim.update(lr=5e-3, schedule="cosine")
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
    # arch: what `jka check` builds a random teacher of before the real one is converted or trained
    cfg.teachers = [dict(workdir=f"../c10_{teacher}", classes=list(range(10)), arch=teacher)]
    cfg.data.update(name="cifar10", image_size=32, batch_size=256)
    cfg.model.name = student
    return cfg


# The CIFAR-10 reproduction configs follow the reference PyTorch code value by value;
# configs/datafree/cifar10_reference.toml lists every value with the line it comes from, and a test
# compares these configs with that table. Most methods ran through the CMI harness (zju-vipa/CMI
# datafree_kd.py and scripts/); DFAD through its own repository (VainF/Data-Free-Adversarial-Distillation).
# One reference epoch = 400 student steps (--ep_steps 400), evaluated once (here: eval_every).
CMI_EPOCHS, CMI_EPOCH_STEPS = 200, 400
# method: (student steps per generator step, nz) of the CMI scripts and datafree_kd.py.
CMI_GENERATOR = {"dafl": (5, 512), "zskt": (5, 256), "dfq": (10, 256)}


def cmi_student_optimizer(cfg):
    """The CMI harness's student: SGD lr 0.1 (scripts), momentum 0.9, weight decay 1e-4 (the --wd
    default), cosine over the run (CosineAnnealingLR; per step here, per epoch there)."""
    cfg.optim.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, schedule="cosine")
    return cfg


def cifar10_generator(algorithm: str, pair: str) -> ml_collections.ConfigDict:
    """DAFL, ZSKT, DFQ as the CMI scripts run them (200 epochs of 400 student steps: 16,000 units
    of 1 generator + 5 student steps, DFQ 8,000 of 1 + 10); DFAD as its own repository."""
    if algorithm == "dfad":
        return cifar10_dfad(pair)
    if algorithm not in CMI_GENERATOR:
        raise unknown_choice("generator method", algorithm, GENERATOR_METHODS)
    kd_steps, nz = CMI_GENERATOR[algorithm]
    units_per_epoch = CMI_EPOCH_STEPS // kd_steps
    # LargeGenerator(nz, ngf=64) there is jka's "generator"; Adam(1e-3, betas (0.5, 0.999)), never decayed.
    cfg = cifar10_pair(generator_config(algorithm, generator="generator", nz=nz, ngf=64, g_steps=1,
                                        kd_steps=kd_steps), pair)
    cfg.datafree.g_optim.update(name="adam", lr=1e-3, b1=0.5, b2=0.999, schedule="constant")
    cmi_student_optimizer(cfg)
    # datafree_kd.py replaces the student's KLDiv(T=args.T) with KLDiv() (T = 1) for the generator
    # methods, so the scripts' --T 20 never acts; the generator's adv term uses the same criterion.
    cfg.loss.T = 1.0
    cfg.train.update(steps=CMI_EPOCHS * units_per_epoch, log_every=20, eval_every=units_per_epoch,
                     checkpoint_every=10 * units_per_epoch)
    return cfg


def cifar10_dfad(pair: str) -> ml_collections.ConfigDict:
    """DFAD as DFAD_cifar.py --scheduler: 500 epochs of 50 generator steps, each after 5 student steps;
    student SGD 0.1 (momentum 0.9, weight decay 5e-4), generator Adam 1e-3 (default betas), both ×0.1
    at epochs 100 and 200; GeneratorA (jka's "small" at ngf 64), nz 256, batch 256."""
    decay = dict(schedule="step", decay_at=(0.2, 0.4), decay_factor=0.1)
    cfg = cifar10_pair(generator_config("dfad", generator="small", nz=256, ngf=64, g_steps=1, kd_steps=5), pair)
    cfg.datafree.g_optim.update(name="adam", lr=1e-3, b1=0.9, b2=0.999, **decay)
    cfg.optim.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, **decay)
    cfg.train.update(steps=500 * 50, log_every=10, eval_every=50, checkpoint_every=500)
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
    """DeepInversion and CMI as the CMI scripts run them: 200 epochs, each one synthesis round of 256
    images then 400 student steps with kd (T = 20) on the pool of every image synthesized so far (uint8),
    read with the CIFAR train transform (crop with 4 px padding + flip).

    DeepInversion (scripts/deepinv): 1000 Adam(0.1) pixel steps, 10·bn + oh − js_3 + 0.001·tv, jitter
    4 px + flip; student batch 256. CMI (scripts/cmi/scratch_cmi_cifar10_wrn402_wrn161.sh): the
    reference ``Generator`` (jka's "small", nz 256, ngf 64) and z, Adam 1e-3, 200 steps, bn 1, oh 1,
    adv 0.5, cr 0.8, τ 0.1, bank 40960, 4096 negatives, head 256; student batch 128."""
    rounds = CMI_EPOCHS
    syn = dict(kd_steps=CMI_EPOCH_STEPS, pool_size=256 * rounds, pool_dtype="uint8", student_crop_pad=4,
               student_flip=True)
    if method == "deepinversion":
        syn.update(steps=1000, lr=0.1, jitter=4, flip=True, bn=10.0, oh=1.0, adv=1.0, tv=0.001, js_T=3.0, init="normal")
    else:
        syn.update(steps=200, lr_g=1e-3, generator="small", nz=256, ngf=64, bn=1.0, oh=1.0, adv=0.5, cr=0.8,
                   tau=0.1, bank_size=40960, negatives=4096, proj_dim=256, crop_pad=4, flip=True,
                   local_scale=(0.25, 1.0), features="auto", batch_size=256)
    cfg = cifar10_pair(inversion_config(method, rounds, **syn), pair)
    if method == "cmi":
        cfg.data.batch_size = 128  # --batch_size 128 (student), --synthesis_batch_size 256
    cmi_student_optimizer(cfg)
    cfg.train.update(log_every=5, eval_every=1, checkpoint_every=10)
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


# jka's variants of data-free amalgamation, as the digits config turns them on (docs/methods.md):
# union-label terms, the BN-statistics prior over each teacher's claimed images, and end-to-end assembly.
DATAFREE_AMALGAMATION_VARIANTS = dict(joint=True, bn=5.0, assemble_steps=600)


def digits_amalgamation(gan_steps: int = 1000, dual_steps: int = 300, width: float = 0.5, batch_size: int = 64,
                        variant: str = "paper"):
    """Two digits teachers (0–4, 5–9; small_cnn of ``width``, trained first from real digits) → one
    10-class small_cnn of the same width, no real image seen by the generator or the student.
    ``variant``: ``paper`` (the library's defaults) or ``jka`` (:data:`DATAFREE_AMALGAMATION_VARIANTS`)."""
    if variant not in ("paper", "jka"):
        raise unknown_choice("data-free amalgamation variant", variant, ("paper", "jka"))
    cfg = base_config(algorithm="datafree_amalgamation")
    cfg.teachers = []
    for n, c in zip("ab", DIGITS_HALVES):
        tcfg = digits_teacher(c)
        tcfg.model.kwargs = dict(width=width)
        cfg.teachers.append(dict(workdir=f"teacher_{n}", classes=list(c), config=tcfg))
    cfg.model.name = "small_cnn"
    cfg.model.kwargs = dict(width=width)
    cfg.amalgamation = ml_collections.ConfigDict({**AMALGAMATION_DEFAULTS, "gamma": 0.0, "gan_steps": gan_steps,
                                                  "dual_steps": dual_steps, "batch_size": batch_size,
                                                  **(DATAFREE_AMALGAMATION_VARIANTS if variant == "jka" else {})})
    cfg.train.log_every = 100
    return cfg
