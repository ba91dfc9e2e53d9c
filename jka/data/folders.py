"""Image-folder datasets ``DIR/<split>/<class name>/*.{jpg,png}`` (classes sorted by name), e.g.
FGVC-Aircraft, which tfds does not have; one of the kinds of ``data.sources`` entry."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from jka.data.core import ArrayDataset
from jka.errors import UserError

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def folder_split(folder: str, split: str, image_size: int) -> ArrayDataset:
    """An image-folder dataset ``folder/<split>/<class name>/*.{jpg,png}`` (classes sorted by name)."""
    root = os.path.join(folder, split)
    if not os.path.isdir(root):
        raise UserError(f"image folder {root!r} does not exist; lay the data out as "
                        f"{folder}/{{train,test}}/<class>/<image>.jpg (see the config's docstring)")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    images, labels = [], []
    for c, name in enumerate(classes):
        for fname in sorted(os.listdir(os.path.join(root, name))):
            if fname.lower().endswith((".jpg", ".jpeg", ".png")):
                with Image.open(os.path.join(root, name, fname)) as im:
                    im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                    images.append(np.asarray(im, np.uint8))
                labels.append(c)
    if not images:
        raise UserError(f"image folder {root!r} has no .jpg/.png images in class sub-folders")
    return ArrayDataset(np.stack(images), np.asarray(labels, np.int64), len(classes), *IMAGENET_STATS)
