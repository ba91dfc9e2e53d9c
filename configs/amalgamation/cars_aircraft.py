"""Amalgamation of two ResNet-18 teachers — Stanford Cars (196 classes) and FGVC-Aircraft (100
variants) — into one ResNet-18 over the 296 classes at 224 px, as in the AAAI 2019 (layer-wise) and
IJCAI 2019 (CFL) papers. No labels reach the student; its images are the union of both training sets.

    jka train configs/amalgamation/cars_aircraft.py:method=layerwise --workdir runs/cars_aircraft_layerwise
    jka train configs/amalgamation/cars_aircraft.py:method=cfl --workdir runs/cars_aircraft_cfl

Variants: ``layerwise`` (hooked features stem, layer1..layer4, w = (1, 1, 1)); ``cfl`` (feature group
``pooled``, the fc layer's input, aligners to 128, MMD², w = (1, 10, 10); CFL also accepts teachers
of different architectures: set teachers[i] and amal.teacher_layers). Adam 1e-3, wd 1e-4, cosine,
46,300 steps of 32 (100 epochs of the 14,811 training images), flip. These are the settings of
KamalEngine's examples/knowledge_amalgamation/comprehensive_classification_{layerwise_amalgamation,
common_feature_learning}.py; configs/amalgamation/cars_aircraft_reference.toml lists each with its
source and what jka cannot express (RandomResizedCrop: jka pads and crops by 16 px instead; the
reference's per-convolution hooks). The reference results, from the table of KamalEngine's
examples/knowledge_amalgamation/README.md: KD 0.766 / 0.710, layer-wise 0.738 / 0.707, CFL 0.773 /
0.720 (cars / aircraft); not reproduced here yet (needs the data and an accelerator).

Data (once, on a machine with internet):
  * Stanford Cars through tfds: `pip install tensorflow && tfds build cars196 --data_dir /data/tfds`.
  * FGVC-Aircraft is not in tfds: download fgvc-aircraft-2013b and lay it out as an image folder
    /data/fgvc_aircraft/{trainval,test}/<variant>/<id>.jpg using data/images_variant_trainval.txt
    and data/images_variant_test.txt (one "<id> <variant>" per line; copy or link
    data/images/<id>.jpg into its variant folder; variant folder names sorted give class order).
Teachers: ImageNet-layout `resnet18` classifiers exported as jka models (`model.json` +
`variables.msgpack`, e.g. converted from PyTorch checkpoints with `jka convert`), in
/data/teachers/cars196_resnet18 (196 outputs) and /data/teachers/fgvc_aircraft_resnet18 (100).
Change the paths with overrides (data.sources.0.data_dir=..., data.sources.1.folder=...,
teachers.0.workdir=..., teachers.1.workdir=...).

summary.json reports eval.accuracy on the union of both test sets and per teacher's classes
(teacher0_classes = cars, teacher1_classes = aircraft).
"""
from jka.errors import unknown_choice
from jka.recipes.amalgamation import cars_aircraft


def get_config(method: str = "layerwise"):
    if method not in ("layerwise", "cfl"):
        raise unknown_choice("method (configs/amalgamation/cars_aircraft.py:method=...)", method, ("layerwise", "cfl"))
    return cars_aircraft(method)
