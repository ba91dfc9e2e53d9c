"""Config builders: every experiment's ``ml_collections.ConfigDict`` is built here, from
:func:`base_config` (every key a run may use, with defaults). ``configs/`` files are thin: a
docstring (the command, the variants, what each reaches) and a ``get_config`` that calls a builder.

Modules by family: :mod:`.digits` (teachers, KD, the demo, the transfer zoo), :mod:`.amalgamation`,
:mod:`.distill`, :mod:`.datafree`, :mod:`.cifar` (CIFAR teachers and KD), :mod:`.transfer`.
"""
from __future__ import annotations

import ml_collections


def base_config(**overrides) -> ml_collections.ConfigDict:
    """Every key a run may use, with defaults. Configs change what they need."""
    cfg = ml_collections.ConfigDict()
    cfg.algorithm = "supervised"
    cfg.seed = 0
    cfg.data = ml_collections.ConfigDict(dict(
        name="digits", image_size=8, batch_size=64, classes=None, data_dir=None,
        # tfds splits: True holds the split in host memory, False reads each batch's rows on demand
        # (each process only its own), None ("auto") holds it when its images take at most 4 GiB.
        # read_workers=N decodes the next N batches in N reader processes (0: one thread).
        in_memory=None, read_workers=0, augment=dict(crop_pad=0, flip=False)))
    cfg.model = ml_collections.ConfigDict(dict(name="small_cnn", kwargs={}))
    cfg.teachers = []
    cfg.optim = ml_collections.ConfigDict(dict(
        name="sgd", lr=0.05, momentum=0.9, nesterov=False, weight_decay=5e-4, schedule="cosine",
        warmup_steps=0, grad_clip=None, decay_at=(0.5, 0.75), decay_factor=0.1))
    cfg.loss = ml_collections.ConfigDict(dict(T=4.0, alpha=1.0, beta=0.0))
    cfg.train = ml_collections.ConfigDict(dict(
        steps=1000, log_every=50, eval_every=0, checkpoint_every=1000, keep_checkpoints=3,
        dtype="float32", progress=True, mesh=dict(data=-1, model=1),
        # Start from this exported model (a workdir or model dir) unless the run has a checkpoint.
        init_from="",
        # Split arrays of >= min_size elements over the mesh's `model` axis (teachers; the state too
        # with state=True) so a teacher larger than one device fits; nothing changes while model=1.
        shard=dict(teachers=True, state=False, min_size=1 << 14)))
    for k, v in overrides.items():
        cfg[k] = v
    return cfg


def cifar_data(cfg, name: str = "cifar10", batch_size: int = 128):
    """A tfds CIFAR dataset at 32 px with the standard augmentation (crop with 4 px padding, flip)."""
    cfg.data.update(name=name, image_size=32, batch_size=batch_size)
    cfg.data.augment.crop_pad = 4
    cfg.data.augment.flip = True
    return cfg
