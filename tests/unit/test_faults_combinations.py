"""Wrong combinations give a clear LocaltuneError naming the path, and change nothing already saved:
an adapter of another base (--adapter, chat, resume), resume with another config, a run directory
in use (live lock) or left locked by a dead process, a model without a tokenizer, a full disk."""

import errno
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx
import pytest

from localtune.errors import LocaltuneError, ModelError, RunError
from localtune.runs import RunDir
from localtune.train.checkpoint import list_checkpoints
from localtune.train.session import run_training
from localtune.train.sft import sft_task

from tiny import make_tiny_model_dir


@pytest.fixture(scope="module")
def cfg(tiny_config, numbered_rows):
    """make(model, tmp_path, out, **options): 4 steps on 12 numbered rows, a checkpoint every 2."""

    def make(model, tmp_path, out, **kw):
        data = tmp_path / "d.jsonl"
        if not data.exists():
            numbered_rows(data, 12)
        return tiny_config(tmp_path / out, data, model=str(model), **kw)

    return make


def snapshot(run: Path) -> dict:
    """Every file's bytes (the lock aside), to prove a refused action changed nothing. The metrics
    log without its `phase` lines: an attempt reports its stages there, and changes nothing else."""
    return {str(p.relative_to(run)): _without_phases(p) for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def _without_phases(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name != "metrics.jsonl":
        return data
    return b"".join(line for line in data.splitlines(keepends=True) if b'"event": "phase"' not in line)


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory, cfg):
    tmp = tmp_path_factory.mktemp("trained")
    return run_training(cfg(tiny_model_dir, tmp, "run"), sft_task)


@pytest.mark.parametrize("other, why", [(dict(hidden=32), "shape"), (dict(layers=1), "not an adapter parameter")])
def test_adapter_of_another_base_is_refused_by_train_and_chat(trained, tmp_path, other, why, cfg):
    from localtune.chat import ChatSession

    model_b = make_tiny_model_dir(tmp_path / "b", **other)
    before = snapshot(trained)
    with pytest.raises(RunError, match=why) as e:
        run_training(cfg(model_b, tmp_path, "dpo", adapter=str(trained)), sft_task)
    assert str(trained / "adapters.safetensors") in str(e.value) and "another base" in str(e.value)
    assert RunDir(tmp_path / "dpo").read()["status"] == "failed"
    with pytest.raises(RunError, match=why) as e:
        ChatSession.open(str(model_b), trained)
    assert str(trained / "adapters.safetensors") in str(e.value)
    assert snapshot(trained) == before


def test_chat_cli_with_a_mismatched_adapter_is_a_clean_error(trained, tmp_path):
    model_b = make_tiny_model_dir(tmp_path / "b", hidden=32)
    out = subprocess.run([sys.executable, "-m", "localtune", "chat", "--model", str(model_b), "--adapter",
                          str(trained), "--prompt", "hi", "--max-tokens", "2"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith(f"error: {trained / 'adapters.safetensors'}: adapter does not fit")


def test_resume_after_the_base_model_changed_is_refused_and_saves_nothing(tiny_model_dir, tmp_path, cfg):
    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    run = run_training(cfg(model, tmp_path, "run"), sft_task)
    before = snapshot(run)
    shutil.rmtree(model)
    make_tiny_model_dir(model, hidden=32)  # same path, another base
    with pytest.raises(RunError, match="does not fit this model") as e:
        run_training(None, sft_task, resume=run, overrides={"iters": 6})
    assert "checkpoints/step-000004/adapters.safetensors" in str(e.value)
    record = ("run.json", "train.log")  # where the failed attempt is recorded; nothing else may change
    after = snapshot(run)
    assert {k: v for k, v in after.items() if k not in record} == {k: v for k, v in before.items() if k not in record}
    assert "does not fit" in RunDir(run).read()["error"]


def test_resume_with_a_different_config_is_refused_before_touching_anything(trained):
    before = snapshot(trained)
    with pytest.raises(RunError, match=r"cannot resume with a different lora_rank \(saved: lora_rank=4\)") as e:
        run_training(None, sft_task, resume=trained, overrides={"lora_rank": 8, "iters": 9})
    assert str(trained) in str(e.value)
    assert snapshot(trained) == before and not (trained / ".lock").exists()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # reaped: the pid now belongs to no process
    return p.pid


def test_run_in_use_is_refused_and_a_dead_holder_is_taken_over(tiny_model_dir, tmp_path, cfg):
    run = run_training(cfg(tiny_model_dir, tmp_path, "run"), sft_task)
    lock = run / ".lock"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "time": 0}))
        before = snapshot(run)
        with pytest.raises(RunError, match=f"in use by process {sleeper.pid}") as e:
            run_training(None, sft_task, resume=run, overrides={"iters": 6})
        assert str(run) in str(e.value) and snapshot(run) == before
    finally:
        sleeper.kill()
        sleeper.wait()
    dead = _dead_pid()
    lock.write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "time": 0}))
    run_training(None, sft_task, resume=run, overrides={"iters": 6})  # stale lock: taken over
    info = RunDir(run).read()
    assert info["status"] == "finished" and info["step"] == 6 and not lock.exists()


@pytest.mark.parametrize("keep", [[], ["tokenizer_config.json"]])
def test_model_without_tokenizer_files_is_a_clear_error(tiny_model_dir, tmp_path, keep, cfg):
    from localtune.models import load_model

    model = tmp_path / "notok"
    model.mkdir()
    for f in ["config.json", "model.safetensors", *keep]:
        shutil.copy(tiny_model_dir / f, model / f)
    with pytest.raises(ModelError, match=str(model)):
        load_model(model)
    with pytest.raises(LocaltuneError, match=str(model)):
        run_training(cfg(model, tmp_path, "run"), sft_task)
    assert RunDir(tmp_path / "run").read()["status"] == "failed"


@pytest.mark.parametrize("fail_call", [4, 5, 6])  # step 4's checkpoint adapter, its optimizer, the run's adapter
def test_disk_full_while_saving_keeps_the_last_good_checkpoint(tiny_model_dir, tmp_path, monkeypatch, fail_call, cfg):
    real = mx.save_safetensors
    calls = {"n": 0}
    saved = {}

    def full_disk(path, arrays, metadata=None):
        calls["n"] += 1
        if calls["n"] == fail_call:
            Path(path).write_bytes(b"\0" * 100)  # a partial file, as a full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, arrays, metadata=metadata)

    def on_event(e):
        if e["event"] == "checkpoint" and e["step"] == 2:
            saved.update(snapshot(Path(e["path"]).parents[1]))

    monkeypatch.setattr(mx, "save_safetensors", full_disk)
    c = cfg(tiny_model_dir, tmp_path, "run")
    with pytest.raises(RunError) as e:
        run_training(c, sft_task, on_event=on_event)
    run = Path(c.out)
    msg = str(e.value)
    assert msg.startswith(f"{run}: no space left on device while saving checkpoint step-000004")
    last = "step-000004" if fail_call == 6 else "step-000002"  # call 6 fails after step 4 was complete
    assert f"the last good checkpoint {last} is intact; " in msg, msg
    assert msg.endswith(f"then go on with `localtune train sft --resume {run}`"), msg
    assert RunDir(run).read()["status"] == "failed" and "no space left" in RunDir(run).read()["error"]
    after = snapshot(run)
    step2 = {k: v for k, v in saved.items() if k.startswith("checkpoints/step-000002/")}
    assert step2 and all(after[k] == v for k, v in step2.items())
    assert after["adapters.safetensors"] == saved["adapters.safetensors"]  # the run's adapter untouched
    assert [p.name for p in list_checkpoints(run)] == (["step-000002"] if fail_call < 6 else
                                                       ["step-000002", "step-000004"])
    assert not [p for p in run.rglob(".*") if p.name != ".lock"], "temp files left behind"


def test_a_run_that_failed_before_its_first_step_may_be_run_again(tmp_path, tiny_model_dir, cfg):
    """A damaged model fails the run at start (its record and phase events exist); once the model is
    fixed, the same command trains into the same directory instead of 'already a run directory'."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    good = (model / "config.json").read_text()
    (model / "config.json").write_text("{")
    with pytest.raises(LocaltuneError):
        run_training(cfg(model, tmp_path, tmp_path / "run"), sft_task)
    run = RunDir(tmp_path / "run")
    failed = run.metrics()
    assert run.read()["status"] == "failed" and failed  # phases were recorded before the failure
    (model / "config.json").write_text(good)
    run_training(cfg(model, tmp_path, tmp_path / "run"), sft_task)
    assert run.read()["status"] == "finished"
    assert "train" in [e["event"] for e in run.metrics()]
    assert not [e for e in failed if e in run.metrics()]  # the failed attempt's phases are gone
