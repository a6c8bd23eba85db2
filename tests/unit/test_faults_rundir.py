"""The run directory under hostile use: a resume from another working directory, after the data or
the base weights changed, after the adapter a DPO run started from was trained on; a killed trainer
that is not reaped; a torn newest checkpoint; exporting or chatting with a run still training."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import localtune  # noqa: F401
import mlx.core as mx
import pytest

from localtune import events
from localtune.cli import main
from localtune.config import TrainConfig
from localtune.config_dpo import DPOConfig
from localtune.errors import RunError
from localtune.lora import ADAPTER_FILE
from localtune.runs import RunDir, layout, list_runs, read_metrics, read_run
from localtune.train.dpo import dpo_task
from localtune.train.session import run_training
from localtune.train.sft import sft_task

from tiny import make_tiny_model_dir


@pytest.fixture()
def cfg(tiny_config):
    """make(model, data, out, cls=TrainConfig, **options): 6 steps, a checkpoint every 2."""
    return lambda model, data, out, cls=TrainConfig, **kw: tiny_config(
        out, data, model=str(model), cls=cls, **{**dict(iters=6, eval_every=0), **kw})


def losses(run: Path) -> dict:
    return {m["step"]: m["train_loss"] for m in read_metrics(run) if "train_loss" in m}


def test_a_run_records_absolute_paths_and_resumes_from_another_directory(
        tmp_path, monkeypatch, cfg, numbered_rows, stop_after):
    a, b = tmp_path / "a", tmp_path / "b"
    for d, seed, word in ((a, 0, "yo"), (b, 1, "no")):  # b holds other files of the same names
        make_tiny_model_dir(d / "models" / "tiny", seed=seed)
        numbered_rows(d / "d.jsonl", 12, assistant=word + " {i}")
    monkeypatch.chdir(a)
    run = run_training(cfg("models/tiny", "d.jsonl", "runs/r"), sft_task, should_stop=stop_after(2))
    record = RunDir(a / run).read()
    assert record["config"]["model"] == str(a / "models" / "tiny") and record["config"]["data"] == str(a / "d.jsonl")
    assert record["config"]["out"] == str(a / "runs" / "r") and record["model_path"] == str(a / "models" / "tiny")

    monkeypatch.chdir(b)
    seen = []
    run_training(None, sft_task, resume=a / "runs" / "r", on_event=seen.append)
    assert [e["path"] for e in seen if e["event"] == "model"] == [str(a / "models" / "tiny")]
    assert [e["path"] for e in seen if e["event"] == "data"] == [str(a / "d.jsonl")]
    assert not [e for e in seen if e["event"] == "notice"]  # nothing to warn about
    assert RunDir(a / "runs" / "r").read()["status"] == "finished"


def test_resume_after_the_data_changed_is_refused_unless_allowed(
        tiny_model_dir, tmp_path, capsys, cfg, numbered_rows, stop_after):
    data = numbered_rows(tmp_path / "d.jsonl", 12)
    run = run_training(cfg(tiny_model_dir, data, tmp_path / "r"), sft_task, should_stop=stop_after(2))
    with open(data, "a") as f:  # edited in place
        f.write(json.dumps({"messages": [{"role": "user", "content": "new"},
                                         {"role": "assistant", "content": "row"}]}) + "\n")
    before = run.joinpath(layout.RUN_FILE).read_bytes()
    with pytest.raises(RunError, match=r"the data changed since this run started: train \(") as e:
        run_training(None, sft_task, resume=run)
    assert "--allow-changed-data" in str(e.value)
    assert run.joinpath(layout.RUN_FILE).read_bytes() == before  # a refused resume changes nothing
    assert "resume refused" in RunDir(run).log_path.read_text()
    assert main(["train", "sft", "--resume", str(run)]) == 2
    assert main(["train", "sft", "--resume", str(run), "--allow-changed-data"]) == 0
    out = capsys.readouterr().out
    assert "note: the data changed since this run started" in out and "resumed at step 2" in out
    assert RunDir(run).read()["status"] == "finished"


def test_resume_after_the_base_weights_changed_is_refused(
        tiny_model_dir, tmp_path, cfg, numbered_rows, stop_after):
    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    data = numbered_rows(tmp_path / "d.jsonl", 12)
    run = run_training(cfg(model, data, tmp_path / "r"), sft_task, should_stop=stop_after(2))
    shutil.rmtree(model)
    make_tiny_model_dir(model, seed=7)  # the same shapes: the adapter would load without a word
    before = run.joinpath(layout.RUN_FILE).read_bytes()
    with pytest.raises(RunError, match="base model .* changed since this run started"):
        run_training(None, sft_task, resume=run)
    assert run.joinpath(layout.RUN_FILE).read_bytes() == before


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="zombies are told apart through /proc (Linux)")
def test_runs_says_interrupted_for_a_killed_trainer_its_parent_has_not_reaped(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        while Path(f"/proc/{child.pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
            pass  # it exits; not reaped: a zombie, which kill(pid, 0) still finds
        run = RunDir(tmp_path / "r")
        run.path.mkdir()
        run.write({"kind": "sft", "status": "running", "pid": child.pid, "started": 1.0, "config": {}})
        run.lock_path.write_text(json.dumps({"pid": child.pid, "host": os.uname().nodename, "time": 0}))
        assert [r["status"] for r in list_runs(tmp_path)] == ["interrupted"]
        out = subprocess.run([sys.executable, "-m", "localtune", "runs", "--root", str(tmp_path)],
                             capture_output=True, text=True, timeout=120)
        assert " interrupted " in out.stdout and " running " not in out.stdout, out.stdout
    finally:
        child.wait()


def test_resume_falls_back_to_the_newest_good_checkpoint(
        tiny_model_dir, tmp_path, cfg, numbered_rows, stop_after):
    data = numbered_rows(tmp_path / "d.jsonl", 16)
    unbroken = run_training(cfg(tiny_model_dir, data, tmp_path / "a", iters=8, lora_dropout=0.1), sft_task)
    run = run_training(cfg(tiny_model_dir, data, tmp_path / "b", iters=8, lora_dropout=0.1), sft_task,
                       should_stop=stop_after(6))
    newest = run / "checkpoints" / "step-000006"
    assert newest.is_dir() and (run / "checkpoints" / "step-000004").is_dir()
    opt = newest / layout.OPTIMIZER_FILE
    opt.write_bytes(opt.read_bytes()[:-100])  # torn
    seen = []
    run_training(None, sft_task, resume=run, on_event=seen.append)
    bad = [e for e in seen if e["event"] == "unusable_checkpoint"]
    assert [Path(e["path"]).name for e in bad] == ["step-000006"] and "truncated" in bad[0]["reason"]
    assert [(e["step"], Path(e["checkpoint"]).name) for e in seen if e["event"] == "resumed"] == [(4, "step-000004")]
    assert "unusable_checkpoint" in RunDir(run).log_path.read_text()
    assert losses(run) == losses(unbroken)  # the same run, as if never broken
    assert mx.array_equal(mx.load(str(run / ADAPTER_FILE))["model.layers.0.self_attn.q_proj.lora_b"],
                          mx.load(str(unbroken / ADAPTER_FILE))["model.layers.0.self_attn.q_proj.lora_b"])
    # Every checkpoint torn: nothing to resume from is a clear error, not a traceback.
    for ckpt in (run / "checkpoints").iterdir():
        (ckpt / ADAPTER_FILE).write_bytes(b"\0" * 4)
    with pytest.raises(RunError, match="no checkpoint can be resumed from"):
        run_training(None, sft_task, resume=run, overrides={"iters": 10})


@pytest.fixture()
def sft_start(tiny_model_dir, tmp_path, cfg, numbered_rows, echo_words, echo_pairs):
    """A finished SFT run to start DPO from, and the pairs."""
    words = echo_words
    pairs = echo_pairs(tmp_path / "pairs.jsonl", [(a, b) for a in words[:4] for b in words[4:8]])
    sft = run_training(cfg(tiny_model_dir, numbered_rows(tmp_path / "d.jsonl", 12), tmp_path / "sft", iters=4,
                           lr=5e-3), sft_task)
    return sft, pairs


@pytest.mark.parametrize("ref", ["cached", "live"])
def test_dpo_resume_keeps_the_reference_it_started_from(
        tiny_model_dir, tmp_path, sft_start, ref, cfg, stop_after):
    sft, pairs = sft_start
    dpo = dict(cls=DPOConfig, adapter=str(sft), ref=ref, iters=6, batch_size=4, lr=5e-3)
    unbroken = run_training(cfg(tiny_model_dir, pairs, tmp_path / "a", **dpo), dpo_task, cfg_cls=DPOConfig)
    run = run_training(cfg(tiny_model_dir, pairs, tmp_path / "b", **dpo), dpo_task, cfg_cls=DPOConfig,
                       should_stop=stop_after(3))
    # The SFT run is trained on: its adapter (the DPO run's start) changes.
    run_training(None, sft_task, resume=sft, overrides={"iters": 8})
    seen = []
    run_training(None, dpo_task, resume=run, on_event=seen.append, cfg_cls=DPOConfig)
    notes = [e["message"] for e in seen if e["event"] == "notice"]
    assert any("changed since the run started" in n and "own copy" in n for n in notes), notes
    if ref == "cached":
        assert [e["status"] for e in seen if e["event"] == "reference"] == ["loaded"]
    got, want = losses(run), losses(unbroken)
    assert sorted(got) == sorted(want) == list(range(1, 7))
    assert all(got[s] == pytest.approx(want[s], abs=1e-6) for s in want), (got, want)

    if ref == "cached":
        # A run recorded before runs kept that copy: recomputing would use the new weights: refused.
        shutil.rmtree(RunDir(run).start_adapter_dir)
        with pytest.raises(RunError, match="cached train reference was computed from other inputs"):
            run_training(None, dpo_task, resume=run, cfg_cls=DPOConfig, overrides={"iters": 8})


def test_export_and_chat_of_a_run_still_training_say_which_checkpoint(
        tiny_model_dir, tmp_path, cfg, numbered_rows):
    from localtune.chat import ChatSession
    from localtune.export import export_run

    run = RunDir(run_training(cfg(tiny_model_dir, numbered_rows(tmp_path / "d.jsonl", 8), tmp_path / "r", iters=4),
                              sft_task))
    quiet = []
    export_run(run.path, "peft", tmp_path / "done", on_event=quiet.append)
    assert quiet == []  # a finished run: nothing to say
    run.update(status="running", pid=os.getpid())
    run.acquire()  # a trainer (this process) is at work on it
    try:
        assert read_run(run.path).is_training
        said = []
        export_run(run.path, "peft", tmp_path / "peft", on_event=said.append)
        ChatSession.open(str(tiny_model_dir), run.path, on_event=said.append)
        expected = f"{run.path} is still training: using the checkpoint of step 4"
        assert [e["message"] for e in said if e["event"] == "notice"] == [expected, expected]
        assert events.parse(said[0]) == events.Notice(expected)
    finally:
        run.release()
