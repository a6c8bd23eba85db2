"""A full or read-only disk is one clear line naming the path and what to do (exit status 2), never a
traceback, and leaves nothing half-written: training keeps its last good checkpoint and says how
to go on, exports leave no partial output. mlx's bare "[write] Unable to write" RuntimeError
becomes an OSError with the path and the errno (localtune/ioerrors.py).

The real-disk tests mount a small tmpfs (root only: the test machine runs as root); elsewhere they
are skipped with that reason, and the injected-failure tests below still run."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx
import pytest

from localtune.errors import LocaltuneError, RunError, StorageError
from localtune.ioerrors import mlx_write_error, os_error_message, user_error

ROOT = Path(__file__).resolve().parents[2]


def _can_mount() -> str | None:
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root"
    if sys.platform != "linux":
        return "tmpfs mounts are Linux-only"
    return None


@pytest.fixture
def small_disk(tmp_path):
    """mount(size) -> a directory on a fresh tmpfs of `size`; unmounted afterwards."""
    why = _can_mount()
    if why:
        pytest.skip(why)
    mounted = []

    def mount(size: str, readonly: bool = False, fill=None) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                           capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(where)
        if fill:
            fill(where)
        if readonly:
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], capture_output=True)


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "localtune", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def one_error_line(out) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def hidden(path: Path) -> list[Path]:
    return [p for p in path.rglob(".*") if p.name != ".lock"]


def test_training_on_a_full_disk_keeps_the_last_checkpoint_and_says_how_to_go_on(small_disk, tiny_model_dir, tmp_path):
    disk = small_disk("200k")
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"hi {i}"},
                                                     {"role": "assistant", "content": f"yo {i}"}]}) + "\n"
                            for i in range(20)))
    run = disk / "run"
    out = run_cli("train", "sft", "--model", tiny_model_dir, "--data", data, "--out", run, "--iters", "40",
                    "--batch-size", "2", "--save-every", "2", "--lora-rank", "4", "--keep-checkpoints", "100")
    line = one_error_line(out)
    assert line.startswith(f"error: {run}: no space left on device while saving checkpoint step-"), line
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints, "some checkpoints fit before the disk filled"
    assert f"the last good checkpoint {checkpoints[-1]} is intact" in line
    assert line.endswith(f"then go on with `localtune train sft --resume {run}`")
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")], "torn checkpoint left"
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed" and "no space left" in info["error"]


def test_training_that_cannot_start_on_a_full_disk(small_disk, tiny_model_dir, tmp_path):
    disk = small_disk("8k")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "yo"}]}) + "\n")
    out = run_cli("train", "sft", "--model", tiny_model_dir, "--data", data, "--out", disk / "run",
                    "--iters", "2", "--batch-size", "1")
    line = one_error_line(out)
    assert "no space left on device" in line and str(disk / "run") in line


@pytest.mark.parametrize("fmt, out, size", [("fused", "fused", "100k"), ("gguf", "m.gguf", "100k"),
                                            ("peft", "peft", "8k")])
def test_export_to_a_full_disk_leaves_nothing(small_disk, tiny_run, tiny_model_dir, fmt, out, size):
    disk = small_disk(size)
    r = run_cli("export", tiny_run, "--format", fmt, "--out", disk / out, "--model", tiny_model_dir)
    line = one_error_line(r)
    assert line == (f"error: {disk / out}: no space left on device; free some space (or write to another "
                    "disk) and retry"), line
    assert list(disk.iterdir()) == [], "half-written output left on the full disk"


def test_a_read_only_disk_is_named_for_every_writer(small_disk, tiny_run, tiny_model_dir, tmp_path):
    def populate(d):
        import shutil

        shutil.copytree(tiny_run, d / "run")

    disk = small_disk("4m", readonly=True, fill=populate)
    cases = [
        (["train", "sft", "--model", tiny_model_dir, "--data", tiny_run.parent / "d.jsonl", "--out", disk / "new"],
         disk / "new"),
        (["export", tiny_run, "--format", "fused", "--out", disk / "f", "--model", tiny_model_dir], disk / "f"),
        (["export", tiny_run, "--format", "gguf", "--out", disk / "f.gguf", "--model", tiny_model_dir],
         disk / "f.gguf"),
        (["data", "split", tiny_run.parent / "d.jsonl", "--out", disk / "s"], disk / "s" / "train.jsonl"),
        (["models", "quantize", tiny_model_dir, disk / "q"], disk / "q"),
        (["train", "sft", "--resume", disk / "run"], disk / "run" / ".lock"),
    ]
    for argv, path in cases:
        line = one_error_line(run_cli(*argv))
        assert line.startswith(f"error: {path}: read-only file system;"), (argv, line)


def test_mlx_write_failure_becomes_enospc_with_the_path(tmp_path, monkeypatch):
    """mlx says only "[write] Unable to write N bytes to file."; with the disk (nearly) full that is
    ENOSPC naming the file we were writing, through the atomic writer every save uses."""
    from localtune import ioerrors
    from localtune.fsutil import atomic_save_safetensors

    def failing_save(path, arrays, metadata=None):
        Path(path).write_bytes(b"\0" * 10)
        raise RuntimeError("[write] Unable to write 2888 bytes to file.")

    class Full:
        f_bavail, f_frsize = 3, 4096

    monkeypatch.setattr(mx, "save_safetensors", failing_save)
    monkeypatch.setattr(ioerrors.os, "statvfs", lambda p: Full)
    target = tmp_path / "adapters.safetensors"
    with pytest.raises(OSError) as e:
        atomic_save_safetensors(target, {"a": mx.zeros(3)})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
    assert list(tmp_path.iterdir()) == [], "the temp file must go"
    assert str(user_error(e.value)) == (f"{target}: no space left on device; free some space (or write to "
                                        "another disk) and retry")


def test_mlx_write_failure_with_space_left_is_an_io_error(tmp_path):
    err = mlx_write_error(tmp_path / "x.safetensors", RuntimeError("[write] Unable to write 10 bytes to file."))
    assert err.errno == errno.EIO and err.filename == str(tmp_path / "x.safetensors")


@pytest.mark.parametrize("code, says", [
    (errno.ENOSPC, "no space left on device; free some space"),
    (errno.EROFS, "read-only file system; write to a writable disk"),
    (errno.EACCES, "permission denied; choose a path you can write to"),
    (errno.EISDIR, "is a directory; give a file path"),
    (errno.ENOTDIR, "a part of the path is a file, not a directory"),
    (errno.EEXIST, "already exists; choose another path"),
    (errno.EDQUOT, "disk quota exceeded"),
])
def test_every_errno_is_one_line_with_the_path_and_what_to_do(code, says):
    e = OSError(code, os.strerror(code), "/some/out")
    error = user_error(e)
    assert isinstance(error, StorageError) and str(error) == os_error_message(e)
    assert str(error).startswith(f"/some/out: {says}")


def test_unknown_errors_are_not_swallowed():
    assert user_error(ValueError("a bug")) is None
    assert user_error(RuntimeError("something else")) is None  # not an mlx I/O error: a bug shows


def test_cli_main_maps_an_os_error_from_any_command(monkeypatch, capsys):
    from localtune import cli
    from localtune.cli import runs_cmd

    def explode(args):
        raise PermissionError(errno.EACCES, "Permission denied", "/root/secret")

    monkeypatch.setattr(runs_cmd, "run", explode)
    assert cli.main(["runs"]) == 2
    assert capsys.readouterr().err == ("error: /root/secret: permission denied; choose a path you can write "
                                       "to, or fix its permissions\n")


def test_a_save_failure_during_training_reports_through_run_error(tiny_model_dir, tmp_path, monkeypatch):
    """mlx's RuntimeError (not an OSError) at a checkpoint used to escape the save's error handling
    as a traceback; it is now the same RunError as any full disk."""
    from localtune import ioerrors
    from localtune.config import build_config
    from localtune.train.session import run_training
    from localtune.train.sft import sft_task

    real = mx.save_safetensors
    calls = {"n": 0}

    def full_on_the_fourth(path, arrays, metadata=None):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("[write] Unable to write 761 bytes to file.")
        return real(path, arrays, metadata=metadata)

    class Full:
        f_bavail, f_frsize = 0, 4096

    monkeypatch.setattr(mx, "save_safetensors", full_on_the_fourth)
    monkeypatch.setattr(ioerrors, "_probe_write", lambda d: None)
    monkeypatch.setattr(ioerrors.os, "statvfs", lambda p: Full)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"hi {i}"},
                                                     {"role": "assistant", "content": f"yo {i}"}]}) + "\n"
                            for i in range(8)))
    cfg = build_config(None, dict(model=str(tiny_model_dir), data=str(data), out=str(tmp_path / "run"), iters=4,
                                  batch_size=2, save_every=2, lora_rank=4))
    with pytest.raises(RunError, match="no space left on device while saving checkpoint step-000004") as e:
        run_training(cfg, sft_task)
    assert "the last good checkpoint step-000002 is intact" in str(e.value)
    assert isinstance(e.value, LocaltuneError)
