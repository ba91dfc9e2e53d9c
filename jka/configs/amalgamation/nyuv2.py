"""Task branching on NYUv2 as the paper ran it: SegNet-VGG16-BN teachers for 13-class segmentation
and for depth → one full-width branchy SegNet student, no labels reaching it.

    jka train amalgamation/nyuv2 --workdir /data/runs/nyuv2_branching data.data_dir='"/data/nyuv2"'

``data.data_dir`` is passed on to the teachers' configs too (an inline teacher config of the run's
dataset reads the run's data_dir), so one override moves all three. Teachers are trained first into
/data/teachers/nyuv2_segnet_seg and .../nyuv2_segnet_depth when they have no exported model (SGD
0.01, momentum 0.9, wd 1e-4, cosine, 10k steps of 16); the student trains 10k steps of 16 (Adam
1e-4, wd 1e-4, cosine; the first half searching branch points). These are the settings of
KamalEngine's nyuv2_seg.py, nyuv2_depth.py and joint_scene_parsing_task_branching.py (200 epochs of
the 795 training images); jka/configs/amalgamation/nyuv2_reference.toml lists each with its source and
what jka cannot express (ImageNet-pretrained encoders, 240-px crops, the teachers' rotation and
colour jitter).

Data: NYUv2's labelled subset (``nyu_depth_v2_labeled.mat``, 1,449 RGB-D images with dense labels;
official split 795 train / 654 test from ``splits.mat``), the 894 raw labels mapped to the 13
classes of Couprie et al. (``class13Mapping`` of the NYUv2 toolbox), 0 (unlabelled) → 255. tfds's
``nyu_depth_v2`` has no segmentation labels, so prepare the two files once (h5py reads the .mat):

    f = h5py.File("nyu_depth_v2_labeled.mat"); split = scipy.io.loadmat("splits.mat")
    images = f["images"][:].transpose(0, 3, 2, 1)          # (1449, 480, 640, 3) uint8
    depths = f["depths"][:].transpose(0, 2, 1)             # metres
    labels = lut13[f["labels"][:].transpose(0, 2, 1)]      # 255 where unlabelled
    # resize to 288×384 (images: bilinear; labels: nearest; depth: nearest, 0 where invalid)
    np.savez(f"{data_dir}/train.npz", image=..., seg=..., depth=...)   # indices split["trainNdxs"] − 1
    np.savez(f"{data_dir}/test.npz",  image=..., seg=..., depth=...)   # indices split["testNdxs"] − 1

(arrays: image uint8 (N, H, W, 3), seg uint8 (N, H, W), depth float32 (N, H, W), H and W divisible
by 32; see jka/data/scenes.py). summary.json: eval.seg_miou / eval.teacher_seg_miou, eval.depth_rmse
/ eval.teacher_depth_rmse (+ pixel acc, abs-rel, δ1..3), eval.miou_ratio and eval.rmse_ratio, the
selected branch points. Not run yet (needs the data and an accelerator).
"""
from jka.configs.amalgamation._dense import branching_student, dense_teacher


def nyuv2_data(cfg, data_dir: str = "/data/nyuv2", batch_size: int = 16):
    """NYUv2 prepared as data_dir/{train,test}.npz (jka.data.scenes documents the layout), 13 classes."""
    cfg.data.update(name="nyuv2", num_classes=13, data_dir=data_dir, batch_size=batch_size)
    cfg.data.augment.flip = True
    return cfg


def get_config():
    """The paper's setting: full SegNet-VGG16-BN teachers (13-class segmentation, depth) on NYUv2,
    trained first into /data/teachers when missing, and a full-width branchy student. Settings of
    KamalEngine's nyuv2_seg.py / nyuv2_depth.py (teachers: SGD 0.01, momentum 0.9, wd 1e-4) and
    joint_scene_parsing_task_branching.py (student: Adam 1e-4, wd 1e-4), all cosine, batch 16, 200
    epochs of ceil(795 / 16) = 50 steps (nyuv2_reference.toml)."""
    specs = []
    for task, kind in (("seg", "segmentation"), ("depth", "depth")):
        tcfg = nyuv2_data(dense_teacher(kind, 10000, 1.0, lr=1e-2))
        tcfg.optim.update(name="sgd", momentum=0.9, nesterov=False, weight_decay=1e-4, schedule="cosine")
        specs.append(dict(workdir=f"/data/teachers/nyuv2_segnet_{task}", task=task, kind=kind, config=tcfg))
    cfg = nyuv2_data(branching_student(specs, 10000, 1.0, lr=1e-4))
    cfg.optim.update(weight_decay=1e-4, schedule="cosine")
    cfg.train.update(eval_every=5000, checkpoint_every=2000)
    return cfg
