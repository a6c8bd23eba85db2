"""Work is never destroyed: every command that writes a directory or a file (export peft/fused/gguf,
models import/quantize, data split, train --out) refuses an existing non-empty output unless
--force, and even with --force never replaces a run, the command's own input, or a directory around
them or around the working directory. Outputs are built in a temp sibling and renamed into place:
a failure leaves nothing behind, and a dead process's temp is cleaned up by the next run."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localtune.errors import LocaltuneError

ROOT = Path(__file__).resolve().parents[2]


def tree(path: Path) -> dict:
    """Every file under path with its content hash: what must not change."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and p.name != ".lock"}


def localtune(*args, cwd):
    return subprocess.run([sys.executable, "-m", "localtune", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture
def ws(tmp_path, tiny_model_dir, tiny_run):
    """A workspace: a copy of the tiny model and run, a user's directory and file, a GGUF."""
    from localtune.export import export_run

    shutil.copytree(tiny_model_dir, tmp_path / "tiny")
    shutil.copytree(tiny_run, tmp_path / "runs" / "r1")
    info = json.loads((tmp_path / "runs/r1/run.json").read_text())
    info["model_path"] = str(tmp_path / "tiny")
    (tmp_path / "runs/r1/run.json").write_text(json.dumps(info))
    (tmp_path / "userdir").mkdir()
    (tmp_path / "userdir" / "keep.txt").write_text("precious")
    (tmp_path / "afile.txt").write_text("precious")
    export_run(tmp_path / "runs/r1", "gguf", tmp_path / "model.gguf")
    (tmp_path / "d.jsonl").write_text((tiny_run.parent / "d.jsonl").read_text())
    return tmp_path


def writers(ws: Path):
    """name -> write(out, force) for every engine writer of a directory."""
    from localtune.data import split_dataset
    from localtune.export import export_run
    from localtune.models import import_gguf, quantize_model_dir

    run, model = ws / "runs/r1", ws / "tiny"
    return {
        "export peft": lambda out, force=False: export_run(run, "peft", out, force=force),
        "export fused": lambda out, force=False: export_run(run, "fused", out, force=force),
        "models import": lambda out, force=False: import_gguf(ws / "model.gguf", out, force=force),
        "models quantize": lambda out, force=False: quantize_model_dir(model, out, bits=4, group_size=32,
                                                                       force=force),
        "data split": lambda out, force=False: split_dataset(ws / "d.jsonl", out, force=force),
    }


WRITERS = ["export peft", "export fused", "models import", "models quantize", "data split"]


@pytest.mark.parametrize("writer", WRITERS)
def test_a_non_empty_user_dir_is_refused_without_force(ws, writer, monkeypatch):
    monkeypatch.chdir(ws)
    write = writers(ws)[writer]
    if writer == "data split":  # split writes two files into the dir: those it would replace count
        (ws / "userdir" / "train.jsonl").write_text("mine\n")
    before = tree(ws / "userdir")
    with pytest.raises(LocaltuneError, match=r"userdir(/train.jsonl)?: already exists.*--force"):
        write(ws / "userdir")
    assert tree(ws / "userdir") == before
    assert not [p for p in ws.iterdir() if p.name.startswith(".")], "temp left behind"


@pytest.mark.parametrize("writer", ["export peft", "export fused", "models import", "models quantize"])
def test_force_replaces_a_user_dir_whole(ws, writer, monkeypatch):
    monkeypatch.chdir(ws)
    writers(ws)[writer](ws / "userdir", force=True)
    assert not (ws / "userdir" / "keep.txt").exists() and any((ws / "userdir").iterdir())
    assert not [p for p in ws.iterdir() if p.name.startswith(".")], "temp or old copy left behind"


TARGETS = [("runs/r1", "run directory|input"), ("runs", "around the input|holds the run"),
           (".", "around|working"), ("runs/r1/checkpoints", "part of the run")]


# data split adds two files and replaces no directory: any directory but a run's may take them.
@pytest.mark.parametrize("writer, target, why", [(w, t, y) for w in WRITERS for t, y in TARGETS
                                                 if not (w == "data split" and t in ("runs", "."))])
def test_never_a_run_or_a_directory_around_one_even_with_force(ws, writer, target, why, monkeypatch):
    monkeypatch.chdir(ws)
    before = tree(ws)
    with pytest.raises(LocaltuneError, match=why):
        writers(ws)[writer](ws / target, force=True)
    assert tree(ws) == before


@pytest.mark.parametrize("writer, source", [("export fused", "tiny"), ("models quantize", "tiny"),
                                            ("models quantize", "tiny/sub"), ("export peft", "tiny")])
def test_never_the_source_model_or_inside_it(ws, writer, source, monkeypatch):
    monkeypatch.chdir(ws)
    before = tree(ws / "tiny")
    with pytest.raises(LocaltuneError, match="input"):
        writers(ws)[writer](ws / source, force=True)
    assert tree(ws / "tiny") == before


def test_models_import_never_into_the_folder_of_its_gguf(ws, monkeypatch):
    from localtune.models import import_gguf

    monkeypatch.chdir(ws)
    (ws / "g").mkdir()
    shutil.copy(ws / "model.gguf", ws / "g" / "model.gguf")
    before = tree(ws / "g")
    with pytest.raises(LocaltuneError, match="around the input"):
        import_gguf(ws / "g" / "model.gguf", ws / "g", force=True)
    assert tree(ws / "g") == before


def test_gguf_export_file_rules(ws, monkeypatch):
    from localtune.export import export_run

    monkeypatch.chdir(ws)
    run = ws / "runs/r1"
    with pytest.raises(LocaltuneError, match="is a directory; give a file path"):  # was IsADirectoryError
        export_run(run, "gguf", ws / "userdir")
    with pytest.raises(LocaltuneError, match="already exists.*--force"):
        export_run(run, "gguf", ws / "afile.txt")
    assert (ws / "afile.txt").read_text() == "precious"
    with pytest.raises(LocaltuneError, match="part of the run"):  # was: run.json replaced by a GGUF
        export_run(run, "gguf", run / "run.json", force=True)
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    export_run(run, "gguf", ws / "afile.txt", force=True)
    assert (ws / "afile.txt").read_bytes()[:4] == b"GGUF"


def test_a_file_where_a_directory_is_wanted_is_a_clear_error(ws, monkeypatch):
    from localtune.export import export_run

    monkeypatch.chdir(ws)
    with pytest.raises(LocaltuneError, match="is a file, not a directory"):  # was FileExistsError
        export_run(ws / "runs/r1", "peft", ws / "afile.txt", force=True)
    with pytest.raises(LocaltuneError, match="afile.txt is a file, not a directory"):
        export_run(ws / "runs/r1", "peft", ws / "afile.txt" / "x")
    assert (ws / "afile.txt").read_text() == "precious"


def test_default_export_inside_the_run_is_allowed_and_refused_the_second_time(ws, monkeypatch):
    from localtune.export import export_run

    monkeypatch.chdir(ws)
    run = ws / "runs/r1"
    export_run(run, "peft", run / "export-peft")
    (run / "export-peft" / "notes.txt").write_text("mine")
    with pytest.raises(LocaltuneError, match="--force"):
        export_run(run, "peft", run / "export-peft")
    assert (run / "export-peft" / "notes.txt").read_text() == "mine"
    export_run(run, "peft", run / "export-peft", force=True)
    assert not (run / "export-peft" / "notes.txt").exists()


def test_a_failed_write_leaves_nothing_and_the_old_output_intact(ws, monkeypatch):
    import localtune.export.fused as fused
    from localtune.export import export_run

    monkeypatch.chdir(ws)
    export_run(ws / "runs/r1", "fused", ws / "out")
    before = tree(ws / "out")

    def boom(*a, **k):
        raise OSError(28, "No space left on device", "x")

    monkeypatch.setattr(fused, "copy_side_files", boom)
    with pytest.raises(OSError):
        export_run(ws / "runs/r1", "fused", ws / "out", force=True)
    assert tree(ws / "out") == before  # the old export still whole
    assert not [p for p in ws.iterdir() if p.name.startswith(".")], "temp left behind"


def test_a_dead_writers_temp_is_removed_by_the_next_write(ws, monkeypatch):
    from localtune.export import export_run

    monkeypatch.chdir(ws)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = ws / f".out.tmp-{dead}-123"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    export_run(ws / "runs/r1", "peft", ws / "out")
    assert not stale.exists() and (ws / "out" / "adapter_model.safetensors").is_file()


def test_train_never_writes_into_a_directory_of_someone_elses_files(ws, monkeypatch):
    from localtune.config import build_config
    from localtune.train.session import run_training
    from localtune.train.sft import sft_task

    monkeypatch.chdir(ws)
    before = tree(ws / "userdir")
    cfg = build_config(None, dict(model=str(ws / "tiny"), data=str(ws / "d.jsonl"), out=str(ws / "userdir"),
                                  iters=1, batch_size=2))
    with pytest.raises(LocaltuneError, match="not a run directory"):
        run_training(cfg, sft_task)
    assert tree(ws / "userdir") == before and not (ws / "userdir" / "run.json").exists()


def test_cli_refuses_then_force_replaces_with_exit_status_2(ws):
    out = localtune("export", "runs/r1", "--format", "fused", "--out", "userdir", cwd=ws)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: userdir: already exists and is not empty; choose another --out, or add --force to replace it"]
    assert (ws / "userdir" / "keep.txt").read_text() == "precious"
    run = tree(ws / "runs/r1")
    same = localtune("export", "runs/r1", "--format", "fused", "--out", "runs/r1", "--force", cwd=ws)
    assert same.returncode == 2 and "input runs/r1" in same.stderr and tree(ws / "runs/r1") == run
    imp = localtune("models", "import", "model.gguf", "userdir", cwd=ws)
    assert imp.returncode == 2 and "--force" in imp.stderr and (ws / "userdir" / "keep.txt").exists()
    forced = localtune("export", "runs/r1", "--format", "fused", "--out", "userdir", "--force", cwd=ws)
    assert forced.returncode == 0, forced.stderr
    assert (ws / "userdir" / "config.json").is_file() and not (ws / "userdir" / "keep.txt").exists()


def test_a_new_run_may_start_where_its_launcher_left_only_its_own_files(tmp_path):
    from localtune.outputs import check_new_run_dir

    run = tmp_path / "run"
    run.mkdir()
    (run / "tui-config.yaml").write_text("iters: 1\n")  # the TUI writes these before the trainer starts
    (run / "console.log").write_text("")
    check_new_run_dir(run)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(LocaltuneError, match="not a run directory"):
        check_new_run_dir(run)
