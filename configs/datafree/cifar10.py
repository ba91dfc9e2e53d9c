"""Data-free distillation on CIFAR-10 for the reference teacher → student pairs; no CIFAR image is seen
by the synthesis or the student (the tfds ``cifar10`` test split only evaluates the student).

    jka train configs/datafree/cifar10.py:method=cmi,pair=wrn40_2_wrn16_1 --workdir runs/c10_cmi_wrn40_2_wrn16_1

``method``: dafl, zskt, dfad, dfq (a generator; 2,000 units of 1 generator + 5 student steps, ZSKT
10; ``datafree.one_stage=True`` for zskt/dfad), deepinversion, cmi (200 rounds of synthesis, 400
student steps each, on a uint8 pool of every synthesized image). ``pair``: resnet34_resnet18,
wrn40_2_wrn16_1, wrn40_2_wrn40_1, wrn40_2_wrn16_2.

The teacher is an exported model directory at ``../c10_<teacher arch>`` next to the run's workdir
(e.g. `jka convert wrn40_2 teacher.pth runs/c10_wrn40_2 --num-classes 10`), or set
``teachers.0.workdir=PATH``. The PyTorch originals (accuracy %, DAFL / ZSKT / DeepInv / DFQ / CMI):
resnet34→resnet18 92.22 / 93.32 / 93.26 / 94.61 / 94.84; wrn40_2→wrn16_1 65.71 / 83.74 / 83.04 /
86.14 / 90.01; wrn40_2→wrn40_1 81.33 / 86.07 / 86.85 / 91.69 / 92.78; wrn40_2→wrn16_2 81.55 / 89.66
/ 89.72 / 92.01 / 92.52. Not reproduced here yet: needs a GPU.
"""
from jka.errors import unknown_choice
from jka.recipes.datafree import GENERATOR_METHODS, cifar10_generator, cifar10_inversion

METHODS = list(GENERATOR_METHODS) + ["deepinversion", "cmi"]


def get_config(method: str = "dfad", pair: str = "resnet34_resnet18"):
    if method in GENERATOR_METHODS:
        return cifar10_generator(method, pair)
    if method in ("deepinversion", "cmi"):
        return cifar10_inversion(method, pair)
    raise unknown_choice("method (configs/datafree/cifar10.py:method=...)", method, METHODS)
