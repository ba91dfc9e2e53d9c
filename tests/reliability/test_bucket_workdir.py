"""A workdir in a bucket (``gs://``): a local fake of Google Cloud Storage's JSON API
(gcp-storage-emulator) serves both jka's own files (etils.epath → gcsfs) and orbax's checkpoints
(TensorStore's gcs driver). A run there is stopped by SIGTERM, rerun, and must end exactly as an
uninterrupted run on the local disk: same summary, same metrics rows, same exported model bytes."""
import json
import os
import signal
import socket
import subprocess

import pytest

from tests.reliability.test_preemption import REPO, _cli, _rows, _start, _wait_for
from tests.train.test_multiprocess import _env

pytest.importorskip("gcsfs", reason="the gs:// test needs gcsfs (pip install -e '.[dev]')")
emulator = pytest.importorskip("gcp_storage_emulator.server", reason="needs gcp-storage-emulator (the dev extra)")

BUCKET = "jka-test"
STEPS = 200


def _with_generation_header(handler):
    """The emulator's object reads, plus the ``x-goog-generation`` header real GCS sends with every
    object's bytes (TensorStore reads the generation from it; without it its reads fail)."""
    def read(request, response, storage, *args, **kwargs):
        handler(request, response, storage, *args, **kwargs)
        if response.status in (200, 206) and "x-goog-generation" not in response._headers:
            try:
                obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
            except Exception:  # noqa: BLE001 - not an object read (metadata of a missing one)
                return
            response["x-goog-generation"] = str(obj["generation"])
    return read


@pytest.fixture
def fake_gcs(monkeypatch):
    """The emulator on a free port; the environment that points gcsfs and TensorStore at it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from gcp_storage_emulator.handlers import objects
    for _, methods in emulator.HANDLERS:
        for method, handler in list(methods.items()):
            if handler in (objects.download, objects.get):
                monkeypatch.setitem(methods, method, _with_generation_header(handler))
    server = emulator.create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    url = f"http://127.0.0.1:{port}"
    env = {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
           "GOOGLE_AUTH_TOKEN_FOR_TESTING": "fake", "GOOGLE_CLOUD_PROJECT": "jka-test"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    import fsspec
    fsspec.filesystem("gs").clear_instance_cache()  # a gcsfs made before this test knows another server
    yield env
    server.stop()


def test_bucket_workdir_stopped_and_resumed_equals_a_local_uninterrupted_run(tmp_path, fake_gcs):
    from etils import epath  # with the fixture's environment, gs:// reaches the fake

    local = tmp_path / "local"
    done = subprocess.run(_cli(local, STEPS), cwd=REPO, env=_env(1), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    remote = f"gs://{BUCKET}/runs/teacher"
    env = _env(1, **fake_gcs)
    log_path = tmp_path / "cut.log"
    with open(log_path, "w") as log:
        proc = _start(_cli(remote, STEPS), env, log)
        _wait_for(log_path, f"step 50/{STEPS}", proc)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=300)
    assert rc == 75, open(log_path).read()[-3000:]
    root = epath.Path(remote)
    stopped = max(int(p.name) for p in (root / "checkpoints").iterdir() if p.name.isdigit())
    assert 50 <= stopped < STEPS
    assert not (root / "jka.lock").exists()  # released on the way out, as on a disk

    rerun = subprocess.run(_cli(remote, STEPS), cwd=REPO, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"(resumed at step {stopped})" in rerun.stderr, rerun.stderr[-3000:]

    here = tmp_path / "from_bucket"
    for name in ("summary.json", "metrics.jsonl", "config.json", "model/model.json", "model/variables.msgpack"):
        (here / name).parent.mkdir(parents=True, exist_ok=True)
        (here / name).write_bytes((root / name).read_bytes())
    assert json.load(open(here / "summary.json")) == json.load(open(local / "summary.json"))
    assert _rows(here) == _rows(local)
    for name in ("model/variables.msgpack", "model/model.json"):
        assert (here / name).read_bytes() == (local / name).read_bytes()
    assert json.load(open(here / "config.json"))["config"] == json.load(open(local / "config.json"))["config"]

    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        pass
    else:  # tensorboardX writes its event files to the bucket itself (google-cloud-storage)
        assert any(p.name.startswith("events.out.tfevents") for p in (root / "tensorboard").iterdir())

    # `jka eval` reads the config the bucket recorded and the checkpoint from the bucket.
    ev = subprocess.run([*_cli(remote, STEPS)[:3], "eval", "--workdir", remote], cwd=REPO, env=env,
                        capture_output=True, text=True)
    assert ev.returncode == 0, ev.stderr[-3000:]
    evaluated, trained = json.loads(ev.stdout), json.load(open(local / "summary.json"))
    assert evaluated["step"] == STEPS and evaluated["eval"] == trained["eval"]


def test_an_unreachable_bucket_is_one_line_before_any_work(tmp_path):
    """gcsfs installed, the store not answering (here: nothing listens at its endpoint): the run is
    refused within JKA_BUCKET_TIMEOUT seconds, on one line with no traceback, and trains nothing (it
    used to retry for about a minute and end in 200 lines of tracebacks, exit 1)."""
    import time

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = _env(1, STORAGE_EMULATOR_HOST=dead, TENSORSTORE_GCS_HTTP_URL=dead, GOOGLE_AUTH_TOKEN_FOR_TESTING="fake",
               GOOGLE_CLOUD_PROJECT="jka-test", JKA_BUCKET_TIMEOUT="5")
    t0 = time.monotonic()
    out = subprocess.run(_cli(f"gs://{BUCKET}/runs/teacher", STEPS), cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 2, out.stderr[-3000:]
    assert time.monotonic() - t0 < 60
    assert "Traceback" not in out.stderr
    jka_lines = [ln for ln in out.stderr.splitlines() if ln.startswith("jka:")]
    assert jka_lines == [f"jka: error: --workdir gs://{BUCKET}/runs/teacher: the bucket did not answer in 5 s; check "
                         "the network (and the bucket's URL), then rerun the same command"], out.stderr
    assert "step 1/" not in out.stderr and os.listdir(tmp_path) == []


def test_a_lost_connection_mid_run_is_a_resource_fault_of_one_line():
    """What a store's client raises when the network goes away mid-run (a checkpoint's upload) is
    reported on one line that says the run resumes."""
    from jka.errors import resource_fault

    for err in (ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)"),
                OSError("Cannot connect to host storage.googleapis.com:443 ssl:default [Network is unreachable]")):
        line = resource_fault(err)
        assert line.startswith("cannot reach the storage (") and "resumes from its last complete checkpoint" in line
    assert resource_fault(ValueError("a bad value")) is None


def test_a_refused_run_leaves_a_bucket_workdir_as_it_found_it(fake_gcs):
    """As on a disk: a run refused after it bound the workdir (a class the data lacks, found when the
    data is read) removes what it wrote there, in a bucket too; the corrected command then trains."""
    from etils import epath

    env = _env(1, **fake_gcs)
    held, new = f"gs://{BUCKET}/runs/held", f"gs://{BUCKET}/runs/new"
    (epath.Path(held) / "notes.txt").write_text("the user's")

    def train(workdir, classes):
        cmd = [*_cli(workdir, 3)[:3], "train", "digits/teacher", "train.progress=False", "train.steps=3",
               "model.kwargs={'width': 0.25}", f"data.classes={classes}", "--workdir", workdir]
        return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)

    def bucket():  # a client with no listing cached: the runs write from other processes
        import fsspec
        return fsspec.filesystem("gs", skip_instance_cache=True)

    for workdir in (held, new):
        refused = train(workdir, "[0,1,10]")
        assert refused.returncode == 2 and "data.classes" in refused.stderr, refused.stderr[-2000:]
    assert [p.rsplit("/", 1)[-1] for p in bucket().ls(held)] == ["notes.txt"]
    assert bucket().cat(f"{held}/notes.txt") == b"the user's"
    assert not bucket().exists(new)
    done = train(held, "[0,1,2]")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(bucket().cat(f"{held}/summary.json"))["step"] == 3
