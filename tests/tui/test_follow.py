"""The run follower: new bytes only, torn last lines, resume rewrites, ETA, process helpers."""

from __future__ import annotations

import json
import os

import pytest
from conftest import write_fake_run

from localtune.runs import RunDir
from tui import process
from tui.follow import FileTail, RunFollower, format_eta


def test_file_tail_reads_only_complete_new_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    tail = FileTail(path)
    assert tail.read_new() == []  # no file yet
    path.write_text('{"a": 1}\n{"b"')
    assert tail.read_new() == ['{"a": 1}']  # the torn line waits
    with open(path, "a") as f:
        f.write(': 2}\n')
    assert tail.read_new() == ['{"b": 2}']
    assert tail.read_new() == []
    assert tail.offset == path.stat().st_size


def test_file_tail_starts_over_when_the_file_is_replaced(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n')
    tail = FileTail(path)
    assert len(tail.read_new()) == 2
    tmp = tmp_path / "new"
    tmp.write_text('{"step": 1}\n')
    os.replace(tmp, path)  # what RunDir.truncate_metrics does on resume
    assert tail.read_new() == ['{"step": 1}'] and tail.reset


def test_follower_series_summary_and_eta(tmp_path, hold_run):
    run = write_fake_run(tmp_path, "r", steps=10)
    hold_run(run).update(status="running", pid=os.getpid(), iters=20)  # this process trains it: halfway
    f = RunFollower(run)
    assert f.poll()
    assert f.series["train"][0] == list(range(1, 11)) and f.series["valid"][0] == [5, 10]
    # 7 s per step (no `elapsed` in these events: wall time), 10 steps left; the last step's
    # evaluation has no timing yet, so the 70 s are a lower bound and say so
    assert f.eta() == (pytest.approx(70.0), False)
    assert "step 10/20" in f.activity() and "ETA >1:10" in f.activity()
    assert not f.poll()  # nothing new
    RunDir(run).append_metric({"event": "train", "step": 11, "train_loss": 1.0, "time": 1077.0})
    assert f.poll() and f.series["train"][1][-1] == 1.0
    assert f.log_tail and not f.is_dpo


def test_dead_running_trainer_reads_interrupted(tmp_path):
    run = write_fake_run(tmp_path, "r", status="running")
    RunDir(run).update(pid=2**22 + 12345)  # no such process
    f = RunFollower(run)
    f.poll()
    assert f.status == "interrupted"
    with pytest.raises(ProcessLookupError):
        process.stop_run(tmp_path / write_fake_run(tmp_path, "done").name)


def test_format_eta():
    assert format_eta(None) == "--" and format_eta(65) == "1:05" and format_eta(3700) == "1:01:40"


def test_write_config_drops_empty_values(tmp_path):
    import yaml

    path = process.write_config(tmp_path / "c.yaml", {"lr": 1e-4, "data": "", "model": None,
                                                      "lora_targets": ("q", "v")})
    assert yaml.safe_load(path.read_text()) == {"lr": 1e-4, "lora_targets": ["q", "v"]}


def test_follower_plots_the_eval_numbers_a_run_declares(tmp_path):
    from localtune.eval.during_training import eval_metrics

    run = write_fake_run(tmp_path, "r", steps=10)
    info = json.loads((run / "run.json").read_text())
    info["metrics"] = [m.to_dict() for m in eval_metrics(ifeval=False, check_names=["greets"])]
    (run / "run.json").write_text(json.dumps(info))
    with open(run / "metrics.jsonl", "a") as fh:
        for step, loops in ((5, 0.4), (10, 0.1)):
            fh.write(json.dumps({"event": "val", "step": step, "val_loss": None, "eval_loops": loops,
                                 "eval_ended": 1 - loops, "eval_checks_passed": 0.5, "eval_check_greets": 0.9,
                                 "eval_mean_tokens": 40.0}) + "\n")
    f = RunFollower(run)
    f.poll()
    answers = f.plot_series("answers")
    assert set(answers) == {"ended", "loops", "checks passed"}  # per-check and length numbers: not plotted
    assert answers["loops"] == ([5, 10], [0.4, 0.1])
    assert "loops 0.10" in f.summary() and "checks passed 0.50" in f.summary()
    assert set(f.plot_series("loss")) == {"train", "valid"}
