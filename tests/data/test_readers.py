"""data.reader='grain': the same batches as jka's reader, resumed at any step, sliced per process."""
import ml_collections
import numpy as np
import pytest

from jka.data import Batches, load_split
from jka.data.core import Prefetch
from jka.data.readers import GrainFeed, check_reader, open_feed
from jka.data.sources import digits
from jka.errors import ConfigError
from tests.helpers import prepare_tfds_images

pytest.importorskip("grain")


def _assert_same(feed, batches, steps):
    for step in steps:
        got, want = feed.host_batch(step), batches.host_batch(step)
        assert sorted(got) == ["image", "label"] and got["image"].dtype == np.uint8
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["label"], want["label"])


def test_grain_reader_gives_jka_batches_from_any_start_and_per_process(tmp_path):
    name = prepare_tfds_images(str(tmp_path), n_train=120, n_test=10, size=20)
    cfg = ml_collections.ConfigDict(dict(name=name, image_size=12, data_dir=str(tmp_path), in_memory=False))
    batches = Batches(load_split(cfg, "train", classes=[2, 7, 5, 0]), 8, seed=3)
    assert batches.steps_per_epoch < 6  # the steps below cross an epoch boundary
    feed = open_feed(batches, stop=9, workers=0, reader="grain")
    assert isinstance(feed, GrainFeed)
    try:
        _assert_same(feed, batches, range(9))  # grain's threads, in this process
        _assert_same(feed, batches, [4, 5, 6, 9])  # a run resumed at step 4 starts the stream there; 9 >= stop
    finally:
        feed.close()
    batches.process = (1, 2)  # process 1 of a 2-process run: rows 4..7 of each global batch
    feed = GrainFeed(batches, stop=8, workers=1)  # a grain process, resumed at step 5
    try:
        _assert_same(feed, batches, range(5, 8))
        assert feed.host_batch(5)["image"].shape == (4, 12, 12, 3)  # started again at 5
    finally:
        feed.close()


def test_reader_choice_and_in_memory_data():
    held = open_feed(Batches(digits("train"), 16, seed=0), stop=2, reader="grain")
    assert isinstance(held, Prefetch)  # data in memory keeps jka's reader thread
    held.close()
    with pytest.raises(ConfigError, match="data.reader='threads' is not valid"):
        check_reader("threads")


def test_grain_missing_is_one_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "grain" else real(n, *a))
    with pytest.raises(ConfigError, match=r"pip install 'jka\[grain\]'"):
        check_reader("grain")
