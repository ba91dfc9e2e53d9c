"""The digits shipped in jka/data/digits.npz are scikit-learn's, split exactly as jka always split
them (train_test_split, 30 % test, seed 0, stratified): every digits number depends on that."""
import hashlib
import os

import numpy as np
import pytest

from jka.data.sources import DIGITS_FILE, DIGITS_SPLIT_SEED, DIGITS_TEST_FRACTION, digits, digits_arrays

# sha256 of the loader's arrays at 8×8 (images float32 C order, labels int64), taken from the
# scikit-learn loader this file replaced; the vendored loader must reproduce them byte for byte.
LOADER_SHA256 = {
    "train": ("4b186f7c4d31f28f", "ca44d5aebabbe683"),
    "test": ("8a53b25f6dc18f33", "12f9e0d92f950d5f"),
}


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def test_shipped_digits_shapes_split_and_dtypes_without_sklearn():
    d = digits_arrays()
    assert d["images"].shape == (1797, 8, 8) and d["images"].dtype == np.uint8
    assert d["images"].min() == 0 and d["images"].max() == 16
    assert d["labels"].shape == (1797,) and d["labels"].dtype == np.uint8 and set(d["labels"]) == set(range(10))
    train, test = d["train"], d["test"]
    assert len(train) == 1257 and len(test) == 540
    assert len(np.union1d(train, test)) == 1797 and len(np.intersect1d(train, test)) == 0
    # Stratified: each class keeps its share in both splits (within one image).
    share = np.bincount(d["labels"], minlength=10) * DIGITS_TEST_FRACTION
    assert np.all(np.abs(np.bincount(d["labels"][test], minlength=10) - share) <= 1)

    for split, n in (("train", 1257), ("test", 540)):
        ds = digits(split)
        assert ds.images.shape == (n, 8, 8, 1) and ds.images.dtype == np.float32
        assert ds.labels.shape == (n,) and ds.labels.dtype == np.int64 and ds.num_classes == 10
        assert (_sha(ds.images), _sha(ds.labels)) == LOADER_SHA256[split]


def test_shipped_digits_equal_sklearn_and_its_split():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    ref = load_digits()
    d = digits_arrays()
    np.testing.assert_array_equal(d["images"].astype(np.float64), ref.images)
    np.testing.assert_array_equal(d["labels"].astype(np.int64), ref.target)
    # The call the loader used to make, on the same arrays it made them from.
    x = (ref.images.astype(np.float32) / 16.0)[..., None]
    y = ref.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=DIGITS_TEST_FRACTION,
                                              random_state=DIGITS_SPLIT_SEED, stratify=y)
    for split, xs, ys in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        ds = digits(split)
        assert ds.images.dtype == xs.dtype and ds.images.shape == xs.shape
        assert ds.images.tobytes() == np.ascontiguousarray(xs).tobytes()
        assert ds.labels.dtype == ys.dtype and ds.labels.tobytes() == ys.tobytes()


def test_shipped_file_is_small_and_has_a_licence_note():
    assert os.path.getsize(DIGITS_FILE) < 200_000
    note = open(os.path.join(os.path.dirname(DIGITS_FILE), "digits_NOTICE.txt")).read()
    assert "CC BY 4.0" in note and "BSD 3-Clause" in note
