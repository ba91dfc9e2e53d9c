"""The CIFAR-100 KD benchmark of CRD (RepDistiller) and mdistiller: its 13 teacher → student pairs ×
the distillation methods, with the settings of RepDistiller's ``train_student.py`` (value by value,
with sources, in jka/configs/distill/cifar100_benchmark_reference.toml): SGD 0.05 (0.01 for the
MobileNetV2 / ShuffleNet students), momentum 0.9, weight decay 5e-4, batch 64, 240 epochs of 782 steps,
the lr ×0.1 after epochs 150, 180 and 210; random crop (pad 4) + flip; T = 4.

    jka train distill/cifar100_benchmark:pair=resnet32x4_resnet8x4,method=kd \\
        --workdir runs/c100_kd_resnet32x4_resnet8x4

``pair``: teacher_student by jka's architecture names (resnet56_resnet20, ..., vgg13_bn_vgg8_bn,
cifar_resnet50_mobile_half: RepDistiller's ResNet50 → MobileNetV2). ``method``: kd (0.9 KD + 0.1
CE), the zoo's hint, at, sp, cc, vid, rkd, pkt, nst (CE + the term, no KD, at the weights of
RepDistiller's scripts/run_cifar_distill.sh), dist (DIST: CE + its relations at β = γ = 2, T = 4),
crd (CE 1 + CRD 0.8, the script's ``-a 0 -b 0.8``) and crd_kd (``-a 1 -b 0.8``: KD 1 added), dkd (CE 1 +
DKD at α 1, T 4, 20 warm-up epochs and mdistiller's β of the pair: 2, 6 or 8), reviewkd (CE 1 + HCL,
20 warm-up epochs, the ReviewKD authors' weight of the pair: 0.6 to 8), kd_ls (KD on standardised
logits as sunshangquan/logit-standardization-KD runs it: CE 0.1, and T 2 with KD weight 9 unless the
log of the pair's published number names others). mdistiller runs DKD and ReviewKD at this same
schedule; ReviewKD's own code trains at batch 128, lr 0.1 (Nesterov): jka keeps this harness.
The zoo's svd, fsp and ft are left out: the script has no line for kdsvd, and its FSP and FT first
train a stage of their own that jka's joint terms do not have.

The teacher is an exported model directory at ``../c100_<teacher arch>`` next to ``--workdir``: the
benchmark's checkpoint (mdistiller's ``cifar_teachers.tar``) converted with, e.g.,
``jka convert resnet32x4 cifar_teachers/resnet32x4_vanilla/ckpt_epoch_240.pth runs/c100_resnet32x4
--num-classes 100`` (the benchmark's names, ``ResNet50``, ``wrn_40_2``, ``vgg13``, are taken too), or
``teachers.0.workdir=PATH``. Needs the tfds ``cifar100`` dataset and a GPU/TPU; not reproduced here yet.
The published numbers of every pair and method, and the projected time: docs/reproduce.md.
"""
from jka.configs.common import cifar_data, config
from jka.errors import unknown_choice

# The 13 pairs: name → (teacher, student), jka's architecture names. All but resnet32x4 → MobileNetV2 are
# pairs of CRD's Tables 1 and 2 (which also have ResNet50 → vgg8, not here).
PAIRS = {f"{t}_{s}": (t, s) for t, s in (
    ("resnet56", "resnet20"), ("resnet110", "resnet32"), ("resnet110", "resnet20"), ("resnet32x4", "resnet8x4"),
    ("wrn40_2", "wrn16_2"), ("wrn40_2", "wrn40_1"), ("vgg13_bn", "vgg8_bn"),
    ("resnet32x4", "shufflev1"), ("resnet32x4", "shufflev2"), ("wrn40_2", "shufflev1"), ("vgg13_bn", "mobile_half"),
    ("cifar_resnet50", "mobile_half"), ("resnet32x4", "mobile_half"),
)}
SLOW_LR_STUDENTS = ("mobile_half", "shufflev1", "shufflev2")  # train_student.py: lr 0.01 for these

# method → (algorithm, its section): the run's method and its reference settings. The zoo's terms:
# distill.alpha (KD, the script's -a), beta (CE, -r, default 1), gamma (the term, -b).
ZOO_WEIGHTS = {"kd": (0.9, 0.1, 0.0), "hint": (0.0, 1.0, 100.0), "at": (0.0, 1.0, 1000.0), "sp": (0.0, 1.0, 3000.0),
               "cc": (0.0, 1.0, 0.02), "vid": (0.0, 1.0, 1.0), "rkd": (0.0, 1.0, 1.0), "pkt": (0.0, 1.0, 30000.0),
               "nst": (0.0, 1.0, 50.0)}
METHODS = {
    **{m: ("distill", dict(method=m, T=4.0, alpha=a, beta=b, gamma=g)) for m, (a, b, g) in ZOO_WEIGHTS.items()},
    "dist": ("dist", dict(T=4.0, beta=2.0, gamma=2.0, ce=1.0)),
    "crd": ("crd", dict(crd=0.8, ce=1.0, kd=0.0, T=4.0)),
    "crd_kd": ("crd", dict(crd=0.8, ce=1.0, kd=1.0, T=4.0)),
    "dkd": ("dkd", dict(alpha=1.0, beta=8.0, T=4.0, ce=1.0, warmup_epochs=20.0)),
    "reviewkd": ("reviewkd", dict(weight=1.0, ce=1.0, warmup_epochs=20.0)),
    "kd_ls": ("distill", dict(method="kd", T=2.0, alpha=9.0, beta=0.1, gamma=0.0, logit_std=True)),
}
# method → {pair: the settings of its section that differ for that pair} (sources in the reference toml):
# DKD's beta (mdistiller's configs/cifar100/dkd/<pair>.yaml), ReviewKD's weight (the authors'
# CIFAR-100/script/reviewKD.sh), KD+LS's T and KD weight (the names of the logs of its published numbers).
PAIR_SETTINGS = {
    "dkd": {p: dict(beta=b) for p, b in (("resnet56_resnet20", 2.0), ("resnet110_resnet32", 2.0),
                                         ("wrn40_2_wrn16_2", 6.0), ("wrn40_2_wrn40_1", 6.0),
                                         ("vgg13_bn_vgg8_bn", 6.0), ("vgg13_bn_mobile_half", 6.0))},
    "reviewkd": {p: dict(weight=w) for p, w in (("resnet56_resnet20", 0.6), ("wrn40_2_wrn16_2", 5.0),
                                                ("wrn40_2_wrn40_1", 5.0), ("resnet32x4_resnet8x4", 5.0),
                                                ("resnet32x4_shufflev1", 5.0), ("resnet32x4_shufflev2", 8.0),
                                                ("wrn40_2_shufflev1", 5.0))},
    "kd_ls": {p: dict(T=t, alpha=w) for p, (t, w) in (("vgg13_bn_vgg8_bn", (3.0, 9.0)), ("resnet110_resnet20", (4.0, 12.0)),
                                                      ("vgg13_bn_mobile_half", (3.0, 9.0)),
                                                      ("cifar_resnet50_mobile_half", (3.0, 1.0)))},
}
# The one pair whose networks have different numbers of stages (3 → 4): the reference pairs the
# stages from the first (zip over its feature lists), jka's default pairs the last ones.
REFERENCE_STAGES = {"resnet32x4_mobile_half": {"stages": (["stage1", "stage2", "stage3"], ["layer1", "layer2", "layer3"]),
                                               "middle": (["stage2"], ["layer2"])}}
STAGE_KIND = {"hint": "middle", "at": "stages", "vid": "stages", "nst": "stages"}
CHOICES = {"pair": list(PAIRS), "method": list(METHODS)}
EPOCHS, DECAY_EPOCHS = 240, (150, 180, 210)


def get_config(pair: str = "resnet32x4_resnet8x4", method: str = "kd", epochs: int = EPOCHS,
               train_size: int = 50_000):
    if pair not in PAIRS:
        raise unknown_choice("CIFAR-100 benchmark pair (pair)", pair, PAIRS)
    if method not in METHODS:
        raise unknown_choice("CIFAR-100 benchmark method (method)", method, METHODS)
    teacher, student = PAIRS[pair]
    algorithm, section = METHODS[method]
    cfg = config(algorithm, **{algorithm: {**section, **PAIR_SETTINGS.get(method, {}).get(pair, {})}})
    stages = REFERENCE_STAGES.get(pair, {}).get(STAGE_KIND.get(method))
    if stages:
        cfg.distill.update(student_stages=stages[0], teacher_stages=stages[1])
    cifar_data(cfg, "cifar100", 64)
    cfg.model.name = student
    # arch: what `jka check` builds a random teacher of before the real one is converted
    cfg.teachers = [dict(workdir=f"../c100_{teacher}", classes=list(range(100)), arch=teacher)]
    lr = 0.01 if student in SLOW_LR_STUDENTS else 0.05
    cfg.optim.update(name="sgd", lr=lr, momentum=0.9, weight_decay=5e-4, schedule="step",
                     decay_at=[e / EPOCHS for e in DECAY_EPOCHS], decay_factor=0.1)
    cfg.train.steps = epochs * -(-train_size // cfg.data.batch_size)  # the last batch of an epoch is partial
    cfg.train.update(log_every=200, eval_every=5000, checkpoint_every=5000)
    return cfg
