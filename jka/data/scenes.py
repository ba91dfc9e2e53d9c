"""Dense multi-task data: procedurally generated scenes, and NYUv2 prepared as ``.npz`` files.

``DenseDataset`` holds images (N, H, W, 3) float32 in [0, 1], a segmentation map (N, H, W) uint8
with 255 for unlabelled pixels and a depth map (N, H, W) float32 with 0 for invalid pixels.

**Scenes** (``data.name = "scenes"``, shipped as code, deterministic by seed). Each image is a room: a
floor whose depth grows towards the horizon and a back wall, both class 0 ("background"), with 2–5
shapes of ``num_classes − 1`` kinds (square, disc, triangle, diamond, horizontal bar, …) standing at
random depths (2–8 m). A shape's radius is 0.8 × image size / depth and it is painted far to near, so
nearer shapes occlude farther ones. Colours are random per shape (the class is in the shape, not the
colour) and mixed with a fog colour in proportion to depth, so depth shows both in size and in haze.
Each image also has, with probability 1/2, a small patch of unlabelled pixels (255) and, independently,
a patch of invalid depth (0), as real sensors and annotations have.

**NYUv2** (``data.name = "nyuv2"``): tfds's ``nyu_depth_v2`` has RGB + depth only (no labels), so
the 13-class segmentation comes from the labelled subset (``nyu_depth_v2_labeled.mat``, 1,449
images, official 795/654 split) mapped to the 13 classes of Couprie et al. Prepare once (see
``configs/amalgamation/nyuv2_branching.py``) into ``data_dir/train.npz`` and ``data_dir/test.npz``
with arrays ``image`` uint8 (N, H, W, 3), ``seg`` uint8 (N, H, W; 255 = unlabelled) and
``depth`` float32 (N, H, W; metres, 0 = invalid), H and W divisible by 32 (e.g. 288×384).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from jka.data.core import Batches, eval_indices
from jka.errors import ConfigError, unknown_choice

DENSE_DATASETS = ("nyuv2", "scenes")  # the data.name values read here (not from tfds)

FOG = np.array([0.75, 0.78, 0.82], np.float32)
NEAR, FAR = 1.0, 10.0
SIZE_AT_UNIT_DEPTH = 0.8  # a shape's radius is this × image size / its depth (3–13 px at 32 px)


@dataclasses.dataclass
class DenseDataset:
    images: np.ndarray
    seg: np.ndarray
    depth: np.ndarray
    num_classes: int
    mean: tuple = (0.0, 0.0, 0.0)
    std: tuple = (1.0, 1.0, 1.0)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple:
        return tuple(self.images.shape[1:])

    def arrays(self, idx) -> dict:
        return {"image": self.images[idx], "seg": self.seg[idx].astype(np.int32),
                "depth": self.depth[idx].astype(np.float32)}


# Each shape's mask in coordinates centred on it and scaled by its radius.
MASKS = {
    "square": lambda dy, dx: (np.abs(dy) <= 0.8) & (np.abs(dx) <= 0.8),
    "disc": lambda dy, dx: dy ** 2 + dx ** 2 <= 1.0,
    "triangle": lambda dy, dx: (dy <= 0.8) & (dy >= -1.0) & (np.abs(dx) <= (dy + 1.0) * 0.55),
    "diamond": lambda dy, dx: np.abs(dy) + np.abs(dx) <= 1.0,
    "bar": lambda dy, dx: (np.abs(dy) <= 0.35) & (np.abs(dx) <= 1.1),
    "ring": lambda dy, dx: (dy ** 2 + dx ** 2 <= 1.0) & (dy ** 2 + dx ** 2 >= 0.3),
    "cross": lambda dy, dx: ((np.abs(dy) <= 0.3) & (np.abs(dx) <= 1.0)) | ((np.abs(dx) <= 0.3) & (np.abs(dy) <= 1.0)),
}
SHAPES = tuple(MASKS)


def render_scene(rng: np.random.Generator, size: int, num_classes: int):
    """One (image, seg, depth) triple; see the module docstring."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    horizon = size * rng.uniform(0.3, 0.5)
    # Background: wall at depth FAR above the horizon, floor approaching the camera below it.
    floor = yy > horizon
    depth = np.where(floor, np.clip(FAR - (FAR - NEAR) * (yy - horizon) / (size - horizon), NEAR, FAR),
                     FAR).astype(np.float32)
    wall_col, floor_col = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
    base = np.where(floor[..., None], floor_col, wall_col).astype(np.float32)
    base = base + 0.04 * rng.standard_normal((size, size, 3)).astype(np.float32)
    seg = np.zeros((size, size), np.uint8)
    color = base
    n_shapes = rng.integers(2, 6)
    depths = np.sort(rng.uniform(NEAR + 1.0, FAR - 2.0, n_shapes))[::-1]  # far to near
    for d in depths:
        cls = int(rng.integers(1, num_classes))
        r = size * SIZE_AT_UNIT_DEPTH / d + rng.uniform(-0.5, 0.5)
        cy, cx = rng.uniform(0.2, 0.9) * size, rng.uniform(0.1, 0.9) * size
        r = max(r, 1.5)
        m = MASKS[SHAPES[(cls - 1) % len(SHAPES)]]((yy - cy) / r, (xx - cx) / r)
        seg[m] = cls
        depth[m] = d
        color = np.where(m[..., None], rng.uniform(0.0, 1.0, 3).astype(np.float32), color)
    fog = ((depth - NEAR) / (FAR - NEAR))[..., None] * 0.6
    image = np.clip((1 - fog) * color + fog * FOG, 0.0, 1.0).astype(np.float32)
    for target, value in ((seg, 255), (depth, 0.0)):
        if rng.uniform() < 0.5:
            h, w = rng.integers(2, size // 4, 2)
            y0, x0 = rng.integers(0, size - h), rng.integers(0, size - w)
            target[y0:y0 + h, x0:x0 + w] = value
    return image, seg, depth


def make_scenes(n: int, size: int = 32, num_classes: int = 5, seed: int = 0) -> DenseDataset:
    """``n`` scenes; scene ``i`` depends only on (seed, i)."""
    if not 2 <= num_classes <= len(SHAPES) + 1:
        raise ConfigError(f"scenes have 2..{len(SHAPES) + 1} classes (background + shapes); got {num_classes}")
    if size % 32:
        raise ConfigError(f"scenes' image_size must be a multiple of 32 for SegNet; got {size}")
    out = [render_scene(np.random.default_rng([seed, i]), size, num_classes) for i in range(n)]
    images, seg, depth = (np.stack(a) for a in zip(*out))
    return DenseDataset(images, seg, depth, num_classes)


def _load_npz(path: str, num_classes: int) -> DenseDataset:
    if not os.path.isfile(path):
        raise ConfigError(f"{path} does not exist; prepare NYUv2 as train.npz/test.npz in data.data_dir "
                          "(see configs/amalgamation/nyuv2_branching.py)")
    with np.load(path) as f:
        missing = {"image", "seg", "depth"} - set(f.files)
        if missing:
            raise ConfigError(f"{path} lacks arrays {sorted(missing)}; it needs image, seg and depth")
        images, seg, depth = f["image"], f["seg"], f["depth"].astype(np.float32)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    return DenseDataset(images.astype(np.float32), seg.astype(np.uint8), depth, num_classes)


def load_dense_split(data_cfg, split: str) -> DenseDataset:
    """``split`` of a dense dataset config (``name``: scenes | nyuv2), with train-set mean/std."""
    name = data_cfg.name
    if name == "scenes":
        n = int(data_cfg.get("train_size", 1600) if split == "train" else data_cfg.get("test_size", 400))
        seed = int(data_cfg.get("scene_seed", 0)) * 2 + (0 if split == "train" else 1)
        ds = make_scenes(n, int(data_cfg.get("image_size", 32)), int(data_cfg.get("num_classes", 5)), seed)
        stats = ds if split == "train" else make_scenes(min(n, 200), ds.images.shape[1], ds.num_classes,
                                                         int(data_cfg.get("scene_seed", 0)) * 2)
    elif name == "nyuv2":
        if not data_cfg.get("data_dir", None):
            raise ConfigError("data.data_dir must point at the prepared NYUv2 train.npz/test.npz")
        ncls = int(data_cfg.get("num_classes", 13))
        ds = _load_npz(os.path.join(data_cfg.data_dir, f"{split}.npz"), ncls)
        stats = ds if split == "train" else _load_npz(os.path.join(data_cfg.data_dir, "train.npz"), ncls)
    else:
        raise unknown_choice("dense dataset", name, DENSE_DATASETS)
    mean = stats.images.reshape(-1, 3).mean(0)
    std = stats.images.reshape(-1, 3).std(0) + 1e-6
    return dataclasses.replace(ds, mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std))


class DenseBatches(Batches):
    """Step-indexed batches of image, seg and depth (batch k is a pure function of (seed, k))."""

    def host_batch(self, step: int) -> dict:
        return self.ds.arrays(self.local_rows(step))


def dense_eval_batches(ds: DenseDataset, batch_size: int):
    """Fixed-size batches in order; the last is padded and carries ``mask = 0`` on padding."""
    for rows, n_valid in eval_indices(len(ds), batch_size):
        yield {**ds.arrays(rows), "mask": (np.arange(batch_size) < n_valid).astype(np.float32)}
