"""Write ``jka/data/digits.npz``: scikit-learn's 1,797 handwritten digits and jka's fixed split.

jka's ``digits`` dataset used to be built at run time with ``sklearn.datasets.load_digits`` and
``sklearn.model_selection.train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)``.
This script ran once, with scikit-learn installed, to freeze exactly that into the package so
that jka no longer needs scikit-learn. The file holds

    images  (1797, 8, 8) uint8   pixel counts 0..16, as ``load_digits().images`` (float64 there)
    labels  (1797,)      uint8   0..9, as ``load_digits().target``
    train   (1257,)      int16   rows of the train split, in the order train_test_split returns them
    test    (540,)       int16   rows of the test split, likewise

The zip entries carry a fixed timestamp, so the file's bytes depend only on the arrays.

    python tools/make_digits_npz.py          # (re)write jka/data/digits.npz
    python tools/make_digits_npz.py --check  # compare the shipped file with scikit-learn's data

Licence of the data: see jka/data/digits_NOTICE.txt.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import zipfile

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "jka", "data", "digits.npz")
TEST_FRACTION = 0.3  # the values jka.data.sources has always used
SPLIT_SEED = 0


def from_sklearn() -> dict[str, np.ndarray]:
    """The arrays, computed with scikit-learn the way jka's loader used to."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images, labels = d.images, d.target
    if not (np.all(images == np.round(images)) and images.min() >= 0 and images.max() <= 16):
        raise SystemExit("load_digits().images are not integers in 0..16; refusing to store them as uint8")
    # The split depends only on the number of rows, the labels and the seed, so splitting the row
    # numbers gives the rows the old call selected (checked below against the old call itself).
    rows = np.arange(len(labels))
    train, test = train_test_split(rows, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels)
    x = (images.astype(np.float32) / 16.0)[..., None]
    x_tr, x_te, y_tr, y_te = train_test_split(x, labels.astype(np.int64), test_size=TEST_FRACTION,
                                              random_state=SPLIT_SEED, stratify=labels)
    assert np.array_equal(x[train], x_tr) and np.array_equal(x[test], x_te)
    assert np.array_equal(labels[train], y_tr) and np.array_equal(labels[test], y_te)
    return {"images": images.astype(np.uint8), "labels": labels.astype(np.uint8),
            "train": train.astype(np.int16), "test": test.astype(np.int16)}


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` (deflated zip of ``.npy`` files) whose bytes do not depend on the time of writing."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only compare the shipped file with scikit-learn's data")
    p.add_argument("--out", default=OUT)
    args = p.parse_args(argv)
    arrays = from_sklearn()
    if args.check:
        with np.load(args.out, allow_pickle=False) as f:
            bad = [k for k, v in arrays.items() if k not in f or f[k].dtype != v.dtype or not np.array_equal(f[k], v)]
        print(f"{args.out}: " + (f"differs in {bad}" if bad else "matches scikit-learn"))
        return 1 if bad else 0
    write_npz(args.out, arrays)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes): "
          + ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in arrays.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
