"""MetricWriter's TensorBoard output, read back from the event file: a scalar, an image whose PNG
decodes to the pixels written, the sample grids of save_grid and the transfer pictures.

The event file is a TFRecord file (per record: uint64 length, uint32 masked CRC of it, the bytes,
uint32 masked CRC of them) of ``Event`` protocol buffers; it is parsed here with tensorboardX's own
``event_pb2`` so that the test needs no TensorFlow or TensorBoard."""
import glob
import io
import json
import os
import struct

import numpy as np
import pytest

pytest.importorskip("tensorboardX")

from PIL import Image  # noqa: E402
from tensorboardX.proto import event_pb2  # noqa: E402

from jka.data.images import grid, save_grid  # noqa: E402
from jka.train.metrics import JsonlWriter, MetricWriter, TensorBoardWriter  # noqa: E402


def _records(path):
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        at += 12  # length, its CRC
        yield data[at:at + length]
        at += length + 4  # the bytes, their CRC


def _values(logdir):
    """[(step, Summary.Value)] of every event file in ``logdir``."""
    out = []
    files = sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*")))
    assert files, f"no event file in {logdir}"
    for path in files:
        for rec in _records(path):
            ev = event_pb2.Event()
            ev.ParseFromString(rec)
            if ev.HasField("summary"):
                out.extend((ev.step, v) for v in ev.summary.value)
    return out


def _decoded(value):
    with Image.open(io.BytesIO(value.image.encoded_image_string)) as im:
        return np.asarray(im)


def test_scalar_and_image_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (13, 21, 3), dtype=np.uint8)
    w = MetricWriter(str(tmp_path))
    assert [type(x) for x in w.writers] == [JsonlWriter, TensorBoardWriter]  # train.writers=None, tensorboardX here
    w.write(7, "train", {"loss": 0.25, "note": "not a number"})
    w.image(7, "samples/test", picture)
    w.close()
    w.image(8, "samples/test", picture)  # after close: a no-op, not an error
    values = _values(str(tmp_path / "tensorboard"))
    scalars = [(s, v) for s, v in values if v.HasField("simple_value")]
    assert [(s, v.tag, v.simple_value) for s, v in scalars] == [(7, "train/loss", 0.25)]
    images = [(s, v) for s, v in values if v.HasField("image")]
    assert len(images) == 1
    step, v = images[0]
    assert (step, v.tag) == (7, "samples/test")
    assert (v.image.height, v.image.width, v.image.colorspace) == (13, 21, 3)
    np.testing.assert_array_equal(_decoded(v), picture)


def test_image_checks_its_input_and_is_off_when_disabled(tmp_path):
    w = MetricWriter(str(tmp_path / "off"), enabled=False)
    assert w.writers == []
    w.image(0, "x", np.zeros((4, 4, 3), np.uint8))  # no TensorBoard: nothing happens
    assert not os.path.exists(tmp_path / "off" / "tensorboard")
    with pytest.raises(ValueError, match="uint8"):
        w.image(0, "x", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="HxWxC"):
        w.image(0, "x", np.zeros((2, 4, 4, 3), np.uint8))


def test_the_config_goes_to_tensorboard_as_text(tmp_path):
    w = MetricWriter(str(tmp_path), names=["tensorboard"])
    w.hyperparameters({"optim": {"lr": 0.5}, "data": {"classes": (1, 2)}})
    w.close()
    (text,) = [v for _, v in _values(str(tmp_path / "tensorboard")) if v.tag.startswith("config")]
    shown = text.tensor.string_val[0].decode()
    assert json.loads(shown.strip("`\n")) == {"optim.lr": 0.5, "data.classes.0": 1, "data.classes.1": 2}


def test_save_grid_sends_the_same_grid(tmp_path):
    """A grey sample grid: the PNG on disk and the TensorBoard image hold the same pixels."""
    images = np.random.default_rng(1).random((10, 8, 8, 1)).astype(np.float32)
    expected = grid(images, nrow=5)
    w = MetricWriter(str(tmp_path))
    path = save_grid(str(tmp_path / "samples_000003.png"), images, nrow=5, writer=w, step=3, tag="samples/generator")
    w.close()
    on_disk = np.asarray(Image.open(path))
    np.testing.assert_array_equal(on_disk, expected[..., 0])
    (step, v), = [(s, v) for s, v in _values(str(tmp_path / "tensorboard")) if v.HasField("image")]
    assert (step, v.tag) == (3, "samples/generator")
    assert (v.image.height, v.image.width) == expected.shape[:2]
    tb = _decoded(v)  # grey is stored as RGB
    assert tb.shape == expected.shape[:2] + (3,)
    np.testing.assert_array_equal(tb, np.repeat(expected, 3, axis=-1))


def test_transfer_pictures_go_to_tensorboard(tmp_path):
    pytest.importorskip("matplotlib")
    from jka.transfer.study import write_outputs

    m = np.array([[2.0, 1.5, 1.6], [1.5, 2.0, 1.8], [1.6, 1.8, 2.0]])
    result = {"method": "depara", "kind": "similarity", "higher_is_closer": True, "layer": "logits",
              "probe_images": 12, "names": ["a", "b", "c"], "matrix": m.tolist(), "rankings": {}}
    paths = write_outputs(result, str(tmp_path), k=1, prefix="depara_")
    images = {v.tag: v for _, v in _values(str(tmp_path / "tensorboard")) if v.HasField("image")}
    assert set(images) == {"transfer/depara_heatmap", "transfer/depara_graph"}
    for key in ("heatmap", "graph"):
        with Image.open(paths[key]) as im:
            np.testing.assert_array_equal(_decoded(images[f"transfer/depara_{key}"]), np.asarray(im.convert("RGB")))
