"""Train a CIFAR-10 teacher from labels (tfds ``cifar10``; needs the dataset prepared once).

Prepare the data on a machine with internet (TensorFlow is only needed for this step):
    pip install tensorflow && tfds build cifar10 --data_dir ~/tensorflow_datasets
Then, on any machine with that directory:
    jka train configs/cifar/supervised_resnet34.py --workdir runs/c10_resnet34 [data.data_dir=DIR]

SGD 0.1, momentum 0.9, wd 5e-4, batch 128, 200 epochs cosine, crop pad 4 + flip, bf16 compute on
accelerators (train.dtype). Expected ≈ 95 % test accuracy (SPEC §7 reports 95.70 for resnet34).
"""
from jka import recipes

EPOCHS = 200
TRAIN_SIZE = 50_000


def get_config():
    cfg = recipes.base_config()
    recipes.cifar_data(cfg, "cifar10", 128)
    cfg.model.name = "cifar_resnet34"
    cfg.optim.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine")
    cfg.train.steps = EPOCHS * TRAIN_SIZE // cfg.data.batch_size
    cfg.train.update(log_every=100, eval_every=2000, checkpoint_every=2000, dtype="bfloat16")
    return cfg
