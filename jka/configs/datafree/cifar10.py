"""Data-free distillation on CIFAR-10 for the reference teacher → student pairs; no CIFAR image is seen
by the synthesis or the student (the tfds ``cifar10`` test split only evaluates the student).

    jka train datafree/cifar10:method=cmi,pair=wrn40_2_wrn16_1 --workdir runs/c10_cmi_wrn40_2_wrn16_1

``method``: dafl, zskt, dfad, dfq (a generator; 2,000 units of 1 generator + 5 student steps, ZSKT
10; ``zskt.one_stage=True`` / ``dfad.one_stage=True``), deepinversion, cmi (200 rounds of synthesis,
400 student steps each, on a uint8 pool of every synthesized image). ``pair``: resnet34_resnet18,
wrn40_2_wrn16_1, wrn40_2_wrn40_1, wrn40_2_wrn16_2.

The teacher is an exported model directory at ``../c10_<teacher arch>`` next to the run's workdir
(e.g. `jka convert wrn40_2 teacher.pth runs/c10_wrn40_2 --num-classes 10`), or set
``teachers.0.workdir=PATH``. The PyTorch originals (accuracy %, DAFL / ZSKT / DeepInv / DFQ / CMI):
resnet34→resnet18 92.22 / 93.32 / 93.26 / 94.61 / 94.84; wrn40_2→wrn16_1 65.71 / 83.74 / 83.04 /
86.14 / 90.01; wrn40_2→wrn40_1 81.33 / 86.07 / 86.85 / 91.69 / 92.78; wrn40_2→wrn16_2 81.55 / 89.66
/ 89.72 / 92.01 / 92.52. Not reproduced here yet: needs a GPU.

These configs follow the reference PyTorch code value by value; jka/configs/datafree/cifar10_reference.toml
lists every value with the line it comes from, and a test compares these configs with that table.
Most methods ran through the CMI harness (zju-vipa/CMI datafree_kd.py and scripts/); DFAD through its
own repository (VainF/Data-Free-Adversarial-Distillation). One reference epoch = 400 student steps
(--ep_steps 400), evaluated once (here: eval_every).
"""
from jka.configs.common import config
from jka.errors import unknown_choice

# The reference CIFAR-10 pairs: name → (teacher arch, student arch).
PAIRS = {
    "resnet34_resnet18": ("cifar_resnet34", "cifar_resnet18"),
    "wrn40_2_wrn16_1": ("wrn40_2", "wrn16_1"),
    "wrn40_2_wrn40_1": ("wrn40_2", "wrn40_1"),
    "wrn40_2_wrn16_2": ("wrn40_2", "wrn16_2"),
}
CMI_EPOCHS, CMI_EPOCH_STEPS = 200, 400
# method: (student steps per generator step, nz) of the CMI scripts and datafree_kd.py.
CMI_GENERATOR = {"dafl": (5, 512), "zskt": (5, 256), "dfq": (10, 256)}
METHODS = ["dafl", "zskt", "dfad", "dfq", "deepinversion", "cmi"]
CHOICES = {"method": METHODS, "pair": list(PAIRS)}


def cifar10_pair(cfg, pair: str):
    """CIFAR-10 data, the pair's student, and its teacher: an exported model at ``../c10_<teacher
    arch>`` next to the run's workdir (a jka run or a converted PyTorch checkpoint)."""
    if pair not in PAIRS:
        raise unknown_choice("CIFAR-10 pair", pair, PAIRS)
    teacher, student = PAIRS[pair]
    # arch: what `jka check` builds a random teacher of before the real one is converted or trained
    cfg.teachers = [dict(workdir=f"../c10_{teacher}", classes=list(range(10)), arch=teacher)]
    cfg.data.update(name="cifar10", image_size=32, batch_size=256)
    cfg.model.name = student
    return cfg


def cmi_student_optimizer(cfg):
    """The CMI harness's student: SGD lr 0.1 (scripts), momentum 0.9, weight decay 1e-4 (the --wd
    default), cosine over the run (CosineAnnealingLR; per step here, per epoch there)."""
    cfg.optim.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, schedule="cosine")
    return cfg


def cifar10_generator(method: str, pair: str):
    """DAFL, ZSKT, DFQ as the CMI scripts run them (200 epochs of 400 student steps: 16,000 units
    of 1 generator + 5 student steps, DFQ 8,000 of 1 + 10)."""
    kd_steps, nz = CMI_GENERATOR[method]
    units_per_epoch = CMI_EPOCH_STEPS // kd_steps
    # LargeGenerator(nz, ngf=64) there is jka's "generator"; Adam(1e-3, betas (0.5, 0.999)), never decayed.
    # datafree_kd.py replaces the student's KLDiv(T=args.T) with KLDiv() (T = 1) for the generator
    # methods, so the scripts' --T 20 never acts; the generator's adv term uses the same criterion.
    section = dict(generator="generator", nz=nz, ngf=64, g_steps=1, kd_steps=kd_steps, T=1.0,
                   g_optim=dict(name="adam", lr=1e-3, b1=0.5, b2=0.999, schedule="constant"))
    cfg = cmi_student_optimizer(cifar10_pair(config(method, **{method: section}), pair))
    cfg.train.update(steps=CMI_EPOCHS * units_per_epoch, log_every=20, eval_every=units_per_epoch,
                     checkpoint_every=10 * units_per_epoch)
    return cfg


def cifar10_dfad(pair: str):
    """DFAD as DFAD_cifar.py --scheduler: 500 epochs of 50 generator steps, each after 5 student steps;
    student SGD 0.1 (momentum 0.9, weight decay 5e-4), generator Adam 1e-3 (default betas), both ×0.1
    at epochs 100 and 200; GeneratorA (jka's "small" at ngf 64), nz 256, batch 256."""
    decay = dict(schedule="step", decay_at=(0.2, 0.4), decay_factor=0.1)
    section = dict(generator="small", nz=256, ngf=64, g_steps=1, kd_steps=5,
                   g_optim=dict(name="adam", lr=1e-3, b1=0.9, b2=0.999, **decay))
    cfg = cifar10_pair(config("dfad", dfad=section), pair)
    cfg.optim.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, **decay)
    cfg.train.update(steps=500 * 50, log_every=10, eval_every=50, checkpoint_every=500)
    return cfg


def cifar10_inversion(method: str, pair: str):
    """DeepInversion and CMI as the CMI scripts run them: 200 epochs, each one synthesis round of 256
    images then 400 student steps with kd (T = 20) on the pool of every image synthesized so far (uint8),
    read with the CIFAR train transform (crop with 4 px padding + flip).

    DeepInversion (scripts/deepinv): 1000 Adam(0.1) pixel steps, 10·bn + oh − js_3 + 0.001·tv, jitter
    4 px + flip; student batch 256. CMI (scripts/cmi/scratch_cmi_cifar10_wrn402_wrn161.sh): the
    reference ``Generator`` (jka's "small", nz 256, ngf 64) and z, Adam 1e-3, 200 steps, bn 1, oh 1,
    adv 0.5, cr 0.8, τ 0.1, bank 40960, 4096 negatives, head 256; student batch 128."""
    section = dict(kd_steps=CMI_EPOCH_STEPS, pool_size=256 * CMI_EPOCHS, pool_dtype="uint8", student_crop_pad=4,
                   student_flip=True, T=20.0)
    if method == "deepinversion":
        section.update(steps=1000, lr=0.1, jitter=4, flip=True, bn=10.0, oh=1.0, adv=1.0, tv=0.001, js_T=3.0,
                       init="normal")
    else:
        section.update(steps=200, lr_g=1e-3, generator="small", nz=256, ngf=64, bn=1.0, oh=1.0, adv=0.5, cr=0.8,
                       tau=0.1, bank_size=40960, negatives=4096, proj_dim=256, crop_pad=4, flip=True,
                       local_scale=(0.25, 1.0), features="auto", batch_size=256)
    cfg = cmi_student_optimizer(cifar10_pair(config(method, **{method: section}), pair))
    if method == "cmi":
        cfg.data.batch_size = 128  # --batch_size 128 (student), --synthesis_batch_size 256
    cfg.train.update(steps=CMI_EPOCHS, log_every=5, eval_every=1, checkpoint_every=10)
    return cfg


def get_config(method: str = "dfad", pair: str = "resnet34_resnet18"):
    if method == "dfad":
        return cifar10_dfad(pair)
    if method in CMI_GENERATOR:
        return cifar10_generator(method, pair)
    if method in ("deepinversion", "cmi"):
        return cifar10_inversion(method, pair)
    raise unknown_choice("method (datafree/cifar10:method=...)", method, METHODS)
