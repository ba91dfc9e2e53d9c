"""A CIFAR teacher trained from labels (tfds ``cifar10``; needs the dataset prepared once).

Prepare the data on a machine with internet (TensorFlow is only needed for this step):
    pip install tensorflow && tfds build cifar10 --data_dir ~/tensorflow_datasets
Then, on any machine with that directory:
    jka train cifar/teacher --workdir runs/c10_resnet34 [data.data_dir=DIR]
    jka train cifar/teacher:arch=wrn40_2 --workdir runs/c10_wrn40_2

SGD 0.1, momentum 0.9, wd 5e-4, batch 128, 200 epochs cosine, crop pad 4 + flip, bf16 compute on
accelerators (train.dtype). The reference resnet34 teacher reaches 95.70 %; not run here (no GPU).
"""
from jka.configs.common import cifar_data, config

EPOCHS, TRAIN_SIZE = 200, 50_000


def get_config(arch: str = "cifar_resnet34", dataset: str = "cifar10"):
    cfg = cifar_data(config("supervised"), dataset, 128)
    cfg.model.name = arch
    cfg.optim.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine")
    cfg.train.steps = EPOCHS * TRAIN_SIZE // cfg.data.batch_size
    cfg.train.update(log_every=100, eval_every=2000, checkpoint_every=2000, dtype="bfloat16")
    return cfg
