"""Common Feature Learning, CFL (SPEC §3.2), of two ResNet-18 teachers — Stanford Cars (196 classes) and
FGVC-Aircraft (100 variants) — into one ResNet-18 over the 296 classes, at 224 px, as in the
IJCAI 2019 paper (CFL also accepts teachers of different architectures: set teachers[i] and
amal.teacher_layers). No labels reach the student; its images are the union of both training sets.

Data (once, on a machine with internet):
  * Stanford Cars through tfds: `pip install tensorflow && tfds build cars196 --data_dir /data/tfds`.
  * FGVC-Aircraft is not in tfds: download fgvc-aircraft-2013b and lay it out as an image folder
    /data/fgvc_aircraft/{trainval,test}/<variant>/<id>.jpg using data/images_variant_trainval.txt
    and data/images_variant_test.txt (one "<id> <variant>" per line; copy or link
    data/images/<id>.jpg into its variant folder; variant folder names sorted give class order).
Teachers: ImageNet-layout `resnet18` classifiers exported as jka models (`model.json` +
`variables.msgpack`, e.g. converted from PyTorch checkpoints with the jka converter), in
/data/teachers/cars196_resnet18 (196 outputs) and /data/teachers/fgvc_aircraft_resnet18 (100).
Change the paths with overrides (data.sources.0.data_dir=..., data.sources.1.folder=...,
teachers.0.workdir=..., teachers.1.workdir=...). Feature group: layer4 (aligners to 128 channels, MMD², weights 1, 10, 10).

    jka train configs/amalgamation/cars_aircraft_cfl.py --workdir runs/cars_aircraft_cfl

summary.json reports eval.accuracy on the union of both test sets and per teacher's classes
(teacher0_classes = cars, teacher1_classes = aircraft). Needs an accelerator (30k steps of 64).
"""
from jka.recipes_amalgamation import cars_aircraft


def get_config():
    return cars_aircraft("cfl")
