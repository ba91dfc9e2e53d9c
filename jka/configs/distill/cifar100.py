"""The distillation zoo's reference run: WRN-40-2 → WRN-16-2 on CIFAR-100 with any method of the zoo,
with the settings of the zju-vipa/KamalEngine run behind the numbers below (value by value, with
sources, in jka/configs/distill/cifar100_reference.toml). SGD 0.05, momentum 0.9, wd 5e-4, batch 64,
240 epochs of 782 steps (187,680), cosine per step, T = 4; random crop (pad 4) + flip. Loss weights per
method: kd is 0.9 KD + 0.1 CE. Every other method is CE + its term alone, without KD, at γ = hint 100,
at 1000, sp 3000, cc 0.02, vid 1, rkd 1, pkt 30000, nst 50, svd 10 (fsp and ft keep jka's defaults).

    jka train distill/cifar100:method=at teachers.0.workdir=/abs/path/runs/c100_wrn40_2 \
        --workdir runs/c100_at_wrn40_2_wrn16_2

The teacher is an exported model directory: a jka run or the RepDistiller ``wrn_40_2`` checkpoint
converted with ``jka convert wrn40_2 ckpt_epoch_240.pth runs/c100_wrn40_2 --num-classes 100`` (the
default teacher workdir ``../c100_wrn40_2`` is a sibling of ``--workdir``). KamalEngine's table
reports (teacher 75.61, student from scratch 73.26, RepDistiller's figures): kd 75.2, hint 73.3, at
73.4, sp 74.3, cc 73.1, vid 73.6, rkd 73.7, pkt 75.2, nst 73.7, svd 73.5 % top-1. Needs the tfds
``cifar100`` dataset prepared in ``data.data_dir`` and a GPU/TPU; not reproduced here yet.
"""
from jka.configs.common import cifar_data, config
from jka.methods.distill.terms import ALIASES, TERMS

# The zoo's CIFAR-100 weights per method, (alpha: KD, beta: CE, gamma: the method's term), as the run
# behind the reported numbers set them (cifar100_reference.toml): KD 0.9 + CE 0.1 for kd, CE 1 + the
# term alone (no KD) for every other method. These are not jka's term defaults.
WEIGHTS = {
    "kd": (0.9, 0.1, 0.0), "hint": (0.0, 1.0, 100.0), "at": (0.0, 1.0, 1000.0), "sp": (0.0, 1.0, 3000.0),
    "cc": (0.0, 1.0, 0.02), "vid": (0.0, 1.0, 1.0), "rkd": (0.0, 1.0, 1.0), "pkt": (0.0, 1.0, 30000.0),
    "nst": (0.0, 1.0, 50.0), "svd": (0.0, 1.0, 10.0),
}
CHOICES = {"method": list(TERMS)}


def get_config(method: str = "kd", epochs: int = 240, train_size: int = 50_000):
    cfg = config("distill", distill=dict(method=method, T=4.0))
    weights = WEIGHTS.get(ALIASES.get(method, method))
    if weights is not None:  # methods without a reference run keep the term's reference weights
        cfg.distill.update(dict(zip(("alpha", "beta", "gamma"), weights)))
    cifar_data(cfg, "cifar100", 64)
    cfg.model.name = "wrn16_2"
    cfg.teachers = [dict(workdir="../c100_wrn40_2", classes=list(range(100)), arch="wrn40_2")]
    cfg.optim.update(name="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine")
    cfg.train.steps = epochs * -(-train_size // cfg.data.batch_size)  # the last batch of an epoch is partial
    cfg.train.update(log_every=200, eval_every=5000, checkpoint_every=5000)
    return cfg
