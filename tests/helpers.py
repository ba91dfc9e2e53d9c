"""Small configs shared by the core tests, tfds mock data, and a tfds dataset written to disk."""
import contextlib
import io
import re
import sys
import types
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jka.configs.common import DIGITS_HALVES, config, digits_teacher


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d jka [IWE] ")


def error_lines(stderr: str) -> list[str]:
    """What a command printed on stderr besides its timestamped log lines (progress, warnings)."""
    return [ln for ln in stderr.strip().splitlines() if ln.strip() and not LOG_LINE.match(ln)]


def tiny_teacher(classes=None, steps=30, **train):
    cfg = digits_teacher(classes, steps)
    cfg.model.kwargs = {"width": 0.25}
    cfg.data.batch_size = 32
    cfg.train.update({"progress": False, "log_every": 10, "mesh": {"data": 1, "model": 1}, **train})
    return cfg


def tiny_kd(steps=20, teacher_steps=30, **train):
    specs = [dict(workdir=f"teacher_{n}", classes=list(c), config=tiny_teacher(c, teacher_steps))
             for n, c in zip("ab", DIGITS_HALVES)]
    cfg = config("kd", kd=dict(T=4.0, alpha=1.0, beta=0.0))
    cfg.teachers = specs
    cfg.train.steps = steps
    cfg.model.kwargs = {"width": 0.25}
    cfg.data.batch_size = 32
    cfg.train.update({"progress": False, "log_every": 5, "mesh": {"data": 1, "model": 1}, **train})
    return cfg


@contextlib.contextmanager
def mock_tfds(num_examples: int):
    """``tfds.testing.mock_data`` with batched reads working: its mock source's ``__getitems__`` is
    set as a plain attribute and so is called without ``self`` (tfds 4.9), which real array_record
    sources do not do. Examples are deterministic per index, the same in every process."""
    from tensorflow_datasets.testing import mocking

    def getitems(record_keys, generator, serialized=False):
        assert not serialized
        return [generator[int(k)] for k in record_keys]

    with tfds.testing.mock_data(num_examples=num_examples), mock.patch.object(mocking, "_getitems", getitems):
        yield


def prepare_tfds_images(data_dir: str, n_train: int = 300, n_test: int = 100, size: int = 32) -> str:
    """Write a real tfds dataset ``jka_test_images`` (array_record files, PNG-encoded RGB images of
    ``size`` px, 10 classes) into ``data_dir`` without TensorFlow; returns its name.

    The images are random but deterministic; each label is the brightest of ten intensity bands,
    so labels and images belong together."""
    JkaTestImages.shape = (n_train, n_test, size)
    builder = JkaTestImages(data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare()
    return builder.name


class JkaTestImages(tfds.core.GeneratorBasedBuilder):
    """The builder of ``prepare_tfds_images`` (module level, so a data source built from it can be
    pickled into reader processes)."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = None  # defined in a test helper: no checksums file next to it
    shape = (300, 100, 32)  # train rows, test rows, image side

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(self.shape[2], self.shape[2], 3)),
            "label": tfds.features.ClassLabel(num_classes=10)}))

    def _split_generators(self, dl_manager):
        n_train, n_test, _ = self.shape
        return {"train": self._generate_examples(n_train, 0), "test": self._generate_examples(n_test, 1)}

    def _generate_examples(self, n, seed):
        rng = np.random.default_rng(seed)
        size = self.shape[2]
        for i in range(n):
            label = int(rng.integers(10))
            img = rng.integers(0, 25, (size, size, 3)) + 25 * label
            buf = io.BytesIO()
            Image.fromarray(img.astype(np.uint8)).save(buf, format="PNG")
            buf.seek(0)
            yield i, {"image": buf, "label": label}


def import_torchvision():
    """torchvision's model code. PyPI's torchvision wheels are CUDA builds: next to a CPU-only torch
    (as in CI) their compiled detection ops cannot load, and the import stops where it registers
    fake-tensor kernels for those ops. The models are plain ``torch.nn`` code that needs neither, so
    in that case the import is retried without the registrations."""
    try:
        import torchvision
    except ImportError:
        pytest.skip("torchvision is not installed (pip install -e '.[dev]' installs it)")
    except RuntimeError as e:  # "operator torchvision::nms does not exist"
        if "torchvision::" not in str(e):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision
    return torchvision
