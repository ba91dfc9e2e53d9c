"""Faults of the machine's resources, from the user's side: a disk that fills up mid-run, memory that
cannot hold the data or the compiled step."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.helpers import error_lines
from tests.reliability.test_checkpoints import TEACHER, _rows

# `jka train` as the console script runs it, except that the disk fills up (a file written until
# the device refuses more) right after the checkpoint of step 5 is on disk.
FILLS_THE_DISK = """
import os, sys
from jka.train import checkpoint
filler, sys.argv = sys.argv[1], ["jka"] + sys.argv[2:]
save = checkpoint.Checkpointer.save
def save_then_fill(self, step, state, progress=None):
    save(self, step, state, progress)
    if step == 5:
        self.manager.wait_until_finished()
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            for _ in range(1024):  # 64 MB at most: more than the 16 MB disk holds
                os.write(fd, bytes(1 << 16))
        except OSError:
            pass
        os.close(fd)
checkpoint.Checkpointer.save = save_then_fill
from jka.entry import main
sys.exit(main())
"""


def _jka(*args, program=("-m", "jka")):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, *program, *args], cwd=REPO, capture_output=True, text=True, env=env)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs of its own (skipped where this process may not mount one)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not allowed here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_the_rerun_resumes_equal_to_an_uninterrupted_run(small_disk, tmp_path):
    full, cut, filler = tmp_path / "full", small_disk / "run", small_disk / "filler"
    assert os.path.ismount(small_disk)
    assert _jka("train", *TEACHER, "--workdir", str(full)).returncode == 0
    out = _jka(str(filler), "train", *TEACHER, "--workdir", str(cut), program=("-c", FILLS_THE_DISK))
    assert out.returncode == 2, out.stderr
    err = error_lines(out.stderr)
    assert len(err) == 1 and "the disk is full" in err[0] and "rerun the same command" in err[0], out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) < 12, out.stderr
    assert not (cut / "jka.lock").exists() and (cut / "checkpoints" / "5").is_dir()
    os.remove(filler)  # the space is back
    again = _jka("train", *TEACHER, "--workdir", str(cut))
    assert again.returncode == 0, again.stderr
    assert "resumed at step 5" in again.stderr
    assert json.load(open(full / "summary.json")) == json.load(open(cut / "summary.json"))
    assert _rows(full) == _rows(cut)


@pytest.mark.parametrize("command", ["train", "check"])
def test_images_too_large_for_memory_are_one_line_not_an_abort(tmp_path, command):
    """``data.image_size`` far too large used to abort inside XLA (exit 134) and leave a stale lock."""
    w = tmp_path / "run"
    args = [command, "digits/teacher", "data.image_size=8192"] + (["--workdir", str(w)] if command == "train" else [])
    out = _jka(*args)
    assert out.returncode == 2, out.stderr
    err = error_lines(out.stderr)
    assert len(err) == 1 and "data.image_size=8192 would take" in err[0] and "lower data.image_size" in err[0], err
    assert not w.exists()  # refused before anything was left in it


def test_the_compiled_steps_memory_is_checked_against_a_formula():
    """A program whose one output is a 1000 x 1000 float32 matrix allocates 4 MB besides its argument:
    refused against 4 MB free (more than 90 % of it), accepted against 8 MB."""
    import jax
    import jax.numpy as jnp

    from jka.errors import UserError
    from jka.train.memory import check_step_memory

    compiled = jax.jit(lambda x: x @ x).lower(jax.ShapeDtypeStruct((1000, 1000), jnp.float32)).compile()
    m = compiled.memory_analysis()
    assert m.output_size_in_bytes == 4_000_000
    new = m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    check_step_memory(compiled, "fix", free=int(new / 0.9) + 1)
    with pytest.raises(UserError, match=r"one step needs 0.004 GB more per device than the 0.004 GB free on .*; fix"):
        check_step_memory(compiled, "fix", free=new)


def test_a_step_that_cannot_fit_is_one_line_before_any_step_and_the_workdir_is_left_as_found(
        tmp_path, monkeypatch, capsys):
    """The step is compiled, and its memory compared with the device's free memory, before the first
    step runs: here the device has 1 kB free. Then, with the memory back, the same command trains."""
    from jka import cli
    from jka.train import memory

    w = tmp_path / "run"
    args = ["train", *TEACHER, "train.steps=2", "--workdir", str(w)]
    monkeypatch.setattr(memory, "free_device_memory", lambda: 1000)
    assert cli.main(args) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "one step needs" in err[0] and "than the 1e-06 GB free" in err[0], err
    assert "lower data.batch_size" in err[0] and not w.exists()
    monkeypatch.undo()
    assert cli.main(args) == 0
    assert json.load(open(w / "summary.json"))["step"] == 2
