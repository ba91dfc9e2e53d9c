"""A tfds split read on demand: only the rows a batch asks for are read and decoded. With
``data.in_memory=False`` (or ``"auto"`` on a split too large for memory) a run never holds the split:
:class:`jka.data.core.Batches` asks each process for its own rows of every global batch, so every host
reads only its slice while the global order stays a single process's (resume and process count do not
change what is trained on)."""
from __future__ import annotations

import copy
import logging
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)


def resize_uint8(images: np.ndarray, size: int | None) -> np.ndarray:
    """uint8 images (N, H, W, C) resized to ``size`` × ``size`` with PIL's bilinear filter (which
    widens its support when shrinking). Host-only, so reader processes never start an accelerator."""
    from PIL import Image

    if size is None or (images.shape[1] == size and images.shape[2] == size):
        return images
    out = np.empty((len(images), size, size, images.shape[3]), np.uint8)
    for i, img in enumerate(np.asarray(images, np.uint8)):
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        out[i] = np.asarray(pil.resize((size, size), Image.BILINEAR)).reshape(size, size, -1)
    return out


class RecordDataset:
    """Rows ``rows`` of a random-access tfds source (``tfds.data_source``), labels mapped by ``lut``, with
    the interface of :class:`jka.data.core.ArrayDataset` that training uses (``len``, ``image_shape``,
    ``num_classes``, ``mean``, ``std``, ``take``). ``labels`` (a class subset and evaluation need them)
    and ``images`` (for the algorithms that want all of it) each cost one pass over the split."""

    reads_on_demand = True

    def __init__(self, source, *, name: str, split: str, image_key: str, label_key: str, num_classes: int,
                 image_shape: tuple, mean: tuple, std: tuple, image_size: int | None = None):
        self.source, self.name, self.split = source, name, split
        self.image_key, self.label_key = image_key, label_key
        self.num_classes, self.mean, self.std = num_classes, mean, std
        self.image_size, self.image_shape = image_size, tuple(image_shape)
        self.rows, self.lut = np.arange(len(source)), None  # a class subset narrows both (subset)
        self._labels: np.ndarray | None = None
        self._images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, records: Sequence[int]) -> list:
        """The decoded examples at these record indices of the source, in order: one
        ``__getitems__`` call, which array_record serves with parallel reads. (Splitting it over
        decode threads was slower on a 2-core CPU: 0.22–0.25 against 0.12–0.19 ms per 32 px PNG.)"""
        keys = [int(r) for r in records]
        getitems = getattr(self.source, "__getitems__", None)
        return list(getitems(keys)) if getitems is not None else [self.source[k] for k in keys]

    def take(self, idx, images: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        """Images (uint8, resized) and labels (in this dataset's label order) of rows ``idx``;
        ``images=False`` skips stacking and resizing the images (None in their place)."""
        idx = np.asarray(idx, np.int64)
        if self._images is not None and self._labels is not None:
            return (self._images[idx] if images else None), self._labels[idx]
        examples = self.read(self.rows[idx])
        labels = np.asarray([int(ex[self.label_key]) for ex in examples], np.int64)
        labels = labels if self.lut is None else self.lut[labels]
        if not images:
            return None, labels
        if not examples:
            return np.empty((0,) + self.image_shape, np.uint8), labels
        # one image at a time: the images of a split may differ in size (e.g. cars196)
        return np.stack([resize_uint8(np.asarray(ex[self.image_key])[None], self.image_size)[0]
                         for ex in examples]), labels

    def _read_all(self, images: bool) -> tuple[np.ndarray | None, np.ndarray]:
        from tqdm.auto import tqdm

        what = "images" if images else "labels"
        log.info("reading all %d rows of %s/%s for its %s", len(self), self.name, self.split, what)
        xs, ys = [np.empty((0,) + self.image_shape, np.uint8)], [np.empty((0,), np.int64)]
        chunk = 1024
        for start in tqdm(range(0, len(self), chunk), desc=f"{self.name}/{self.split} {what}", leave=False):
            x, y = self.take(np.arange(start, min(start + chunk, len(self))), images)
            xs.append(x)
            ys.append(y)
        return (np.concatenate(xs) if images else None), np.concatenate(ys)

    @property
    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = self._read_all(False)[1]
        return self._labels

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images, self._labels = self._read_all(True)
        return self._images

    def subset(self, keep: np.ndarray, lut: np.ndarray, num_classes: int) -> "RecordDataset":
        """Rows where ``keep`` holds, labels mapped through ``lut`` (see ``select_classes``)."""
        out = copy.copy(self)
        out.num_classes, out.rows = num_classes, self.rows[keep]
        out.lut = lut if self.lut is None else lut[self.lut]
        out._labels = lut[self.labels[keep]]
        out._images = None if self._images is None else self._images[keep]
        return out
