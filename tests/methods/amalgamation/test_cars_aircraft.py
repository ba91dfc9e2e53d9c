"""The Cars + Aircraft configs build and train 1–2 steps on mock data (tfds mock cars196, a
generated FGVC-Aircraft image folder), at 16 px with tiny random teachers instead of ResNet-18s."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from jka import config as config_lib
from jka import run
from jka.run import train

from tests.methods.amalgamation.tiny_teachers import make_teacher
from tests.helpers import mock_tfds

N_AIRCRAFT = 3


def make_aircraft_folder(root):
    rng = np.random.default_rng(0)
    for split, n in (("trainval", 3), ("test", 2)):
        for c in range(N_AIRCRAFT):
            d = os.path.join(root, split, f"variant_{c:02d}")
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                size = (20 + 3 * i, 17 + c)  # images of different sizes, resized on load
                Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(os.path.join(d, f"{i}.jpg"))


@pytest.mark.parametrize("name", ["layerwise", pytest.param("cfl", marks=pytest.mark.slow)])
def test_cars_aircraft_config_runs_on_mock_data(name, tmp_path):
    cfg = run.load(f"amalgamation/cars_aircraft:method={name}")
    assert cfg.data.sources[0]["name"] == "cars196" and cfg.data.image_size == 256
    assert cfg.data.augment.resized_crop == cfg.data.augment.eval_crop == 224
    assert cfg.model.name == "resnet18" and cfg.teachers[1]["classes"] == list(range(196, 296))
    assert cfg[name].layers and cfg.algorithm in ("layerwise", "cfl")
    folder = str(tmp_path / "aircraft")
    make_aircraft_folder(folder)
    t_cars = make_teacher(tmp_path / "t_cars", "small_cnn", 196, image_size=16, channels=3, width=0.25)
    t_air = make_teacher(tmp_path / "t_air", "small_cnn", N_AIRCRAFT, image_size=16, channels=3, seed=1, width=0.25)
    config_lib.apply_overrides(cfg, [
        "data.image_size=16", "data.batch_size=8", "data.augment.resized_crop=12", "data.augment.eval_resize=16",
        "data.augment.eval_crop=12", "model.name=small_cnn",
        "train.steps=2", "train.eval_every=0", "train.checkpoint_every=0", "train.progress=False",
        f"data.sources.1.folder={folder}", "data.sources.0.data_dir=None",
        f"teachers.0.workdir={t_cars}", f"teachers.1.workdir={t_air}",
        "teachers.0.arch='small_cnn'", "teachers.1.arch='small_cnn'",
        f"teachers.1.classes={list(range(196, 196 + N_AIRCRAFT))}", f"{name}.layers=['block3']"])
    cfg.model.kwargs = {"width": 0.25}
    with mock_tfds(num_examples=8):  # tfds' mock, with batched reads working
        summary = train(cfg, str(tmp_path / "run"))
    assert summary["step"] == 2 and summary["labels_used"] is False
    assert summary["student_classes"] == list(range(196 + N_AIRCRAFT))
    assert set(summary["eval"]) >= {"accuracy", "teacher0_classes", "teacher1_classes"}
    with open(tmp_path / "run" / "model" / "model.json") as f:
        assert json.load(f)["num_classes"] == 196 + N_AIRCRAFT
