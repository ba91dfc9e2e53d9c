"""FFL's reference run: CIFAR-100 ResNet-32 with a shared trunk up to stage 2 and two private stage-3
branches, fused by the FFL fusion module.

    jka train distill/cifar100_ffl --workdir runs/cifar100_ffl_resnet32

SGD 0.1 Nesterov, weight decay 1e-4 (fusion module 1e-5), batch 128, 301 epochs of 391 steps (117,691;
the reference's loop runs epochs 0 to ``--epoch 300`` inclusive), ×0.1 at epochs 150 and 225, T = 3,
ramp R = 80 epochs: FFL-pytorch's train_FFL.py value by value, with sources, in
jka/configs/distill/cifar100_ffl_reference.toml. The FFL paper reports each ResNet-32 branch clearly above
a ResNet-32 trained alone (about 70–71 % vs 69 %) and the fused classifier above the branches. Needs
CIFAR-100 prepared for tfds (``data.data_dir=DIR``) and a GPU; not reproduced here yet.
"""
from jka.configs.common import cifar_data, config


def get_config(epochs: int = 301, batch: int = 128, train_images: int = 50_000):
    cfg = cifar_data(config("ffl", ffl=dict(shared_trunk=True, feature_key="layer3")), "cifar100", batch)
    cfg.model.name = "cifar_resnet32"
    cfg.model.kwargs = dict(shared_stages=2)
    cfg.optim.update(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4, schedule="step",
                     decay_at=(150 / epochs, 225 / epochs), decay_factor=0.1)
    steps_per_epoch = -(-train_images // batch)  # the last batch of an epoch is partial
    cfg.train.steps = epochs * steps_per_epoch
    cfg.train.eval_every = 10 * steps_per_epoch
    cfg.train.checkpoint_every = 10 * steps_per_epoch
    return cfg
