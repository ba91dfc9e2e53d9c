"""Amalgamation of two ResNet-18 teachers — Stanford Cars (196 classes) and FGVC-Aircraft (100
variants) — into one ResNet-18 over the 296 classes at 224 px, as in the AAAI 2019 (layer-wise) and
IJCAI 2019 (CFL) papers. No labels reach the student; its images are the union of both training sets.

    jka train amalgamation/cars_aircraft:method=layerwise --workdir runs/cars_aircraft_layerwise
    jka train amalgamation/cars_aircraft:method=cfl --workdir runs/cars_aircraft_cfl

Variants: ``layerwise`` (hooked features stem, layer1..layer4, w = (1, 1, 1)); ``cfl`` (feature group
``pooled``, the fc layer's input, aligners to 128, MMD², w = (1, 10, 10); CFL also accepts teachers
of different architectures: set teachers[i] and cfl.teacher_layers). Adam 1e-3, wd 1e-4, cosine,
46,300 steps of 32 (100 epochs of the 14,811 training images), RandomResizedCrop(224) + flip in
training, Resize(256) + CenterCrop(224) in evaluation (images loaded at 256 × 256). These are the
settings of KamalEngine's examples/knowledge_amalgamation/comprehensive_classification_{layerwise_amalgamation,
common_feature_learning}.py; jka/configs/amalgamation/cars_aircraft_reference.toml lists each with its
source and what jka cannot express (the reference crops the full-size photo, jka the 256 px image it
loaded; the reference's per-convolution hooks). The reference results, from the table of KamalEngine's
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
from jka.configs.common import config
from jka.errors import unknown_choice

# The reference hooks every Conv2d; jka hooks its named features, so every one of them (layerwise).
# The reference's one feature group is the fc layer's input: the pooled 512-d vector (cfl).
SECTIONS = {"layerwise": dict(layers=["stem", "layer1", "layer2", "layer3", "layer4"], weights=(1.0, 1.0, 1.0)),
            "cfl": dict(layers=["pooled"], weights=(1.0, 10.0, 10.0))}
CHOICES = {"method": list(SECTIONS)}


def get_config(method: str = "layerwise"):
    """Two ImageNet-layout ResNet-18 teachers (Stanford Cars, FGVC Aircraft) → one ResNet-18, 224 px crops.

    The student's label space is cars196's 196 classes followed by the aircraft's 100 variants;
    the training images are the union of both training sets (labels are never used). Settings of
    KamalEngine's comprehensive_classification_{layerwise_amalgamation,common_feature_learning}.py
    (cars_aircraft_reference.toml): Adam 1e-3, wd 1e-4, cosine, batch 32, 100 epochs of
    ceil((8144 + 6667) / 32) = 463 steps.
    """
    if method not in SECTIONS:
        raise unknown_choice("method (amalgamation/cars_aircraft:method=...)", method, SECTIONS)
    cfg = config(method, **{method: SECTIONS[method]})
    # Images are loaded at 256 px; training views are RandomResizedCrop(224) + flip, evaluation views
    # Resize(256) + CenterCrop(224), both on the device.
    cfg.data.update(name="cars196+fgvc_aircraft", image_size=256, batch_size=32)
    cfg.data.augment.update(crop_pad=0, resized_crop=224, flip=True, eval_resize=256, eval_crop=224)
    cfg.data.sources = [dict(name="cars196", data_dir="/data/tfds", train_split="train", test_split="test"),
                        dict(folder="/data/fgvc_aircraft", train_split="trainval", test_split="test")]
    cfg.model.name = "resnet18"
    cfg.teachers = [dict(workdir="/data/teachers/cars196_resnet18", classes=list(range(196)), arch="resnet18"),
                    dict(workdir="/data/teachers/fgvc_aircraft_resnet18", classes=list(range(196, 296)),
                         arch="resnet18")]
    cfg.optim.update(name="adam", lr=1e-3, weight_decay=1e-4, schedule="cosine")
    cfg.train.update(steps=46300, eval_every=2000, checkpoint_every=2000)
    return cfg
