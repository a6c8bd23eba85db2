"""The run-directory module: tolerant reading, the one status rule, listing, deleting, and which
checkpoints are whole. Pure files and processes: no model."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from run_dirs import make_checkpoint

from localtune.errors import RunError
from localtune.runs import (
    RunDir,
    adapter_runs,
    checkpoint_problem,
    delete_run,
    is_run_dir,
    latest_checkpoint,
    latest_good_checkpoint,
    layout,
    list_runs,
    read_run,
    run_status,
)


def make_run(root: Path, name: str, status="finished", pid=0, **record) -> RunDir:
    run = RunDir(root / name)
    run.path.mkdir(parents=True)
    run.write({"kind": "sft", "status": status, "pid": pid, "started": 1.0, "config": {"iters": 4}, **record})
    return run


def lock_as(run: RunDir, pid: int, **extra) -> None:
    run.lock_path.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "time": 0, **extra}))


def test_status_rule_believes_a_live_record_only_while_its_trainer_holds_the_lock(tmp_path):
    run = make_run(tmp_path, "r", status="running", pid=os.getpid())
    assert run_status(run.read(), None) == "interrupted"  # no lock: nobody is at work
    run.acquire()  # this process: alive, holding the lock the record names
    try:
        assert read_run(run.path).status == "running" and read_run(run.path).is_training
        assert run_status({"status": "running", "pid": os.getpid() + 1}, run.lock_holder()) == "interrupted"
        holder = {**run.lock_holder(), "started": -1}  # the same pid, but another process (pid reused)
        if holder.get("started") is not None or Path("/proc/self/stat").exists():
            assert run_status(run.read(), holder) == "interrupted"
    finally:
        run.release()
    for final in ("finished", "stopped", "failed"):
        assert run_status({"status": final, "pid": 1}, None) == final
    assert run_status({"status": "starting"}, None) == "starting"  # not yet recorded who works on it


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="zombies are told apart through /proc (Linux)")
def test_a_killed_but_unreaped_trainer_reads_interrupted(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        while Path(f"/proc/{child.pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
            pass  # it exits; not reaped (no wait): a zombie, which kill(pid, 0) still finds
        run = make_run(tmp_path, "r", status="running", pid=child.pid)
        lock_as(run, child.pid)
        assert read_run(run.path).status == "interrupted"
        assert [r["status"] for r in list_runs(tmp_path)] == ["interrupted"]
        run.acquire()  # the dead holder's lock is stale: taken over
        assert run.lock_holder()["pid"] == os.getpid()
        run.release()
    finally:
        child.wait()


def test_reading_is_tolerant_and_listing_shows_unreadable_runs(tmp_path):
    good = make_run(tmp_path, "good", final_unused=1)
    good.append_metric({"event": "train", "step": 1, "train_loss": 2.0})
    good.append_metric({"event": "phase", "phase": "saving", "done": None, "total": None, "time": 1.0})
    good.append_metric({"event": "val", "step": 1, "val_loss": 1.5})
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / layout.RUN_FILE).write_text("{torn")
    (tmp_path / "not-a-run").mkdir()
    info = read_run(bad)
    assert info.status == "unreadable" and "unreadable" in info.problem and info.record == {}
    assert read_run(tmp_path / "not-a-run").status == "starting"  # no record yet
    rows = {r["name"]: r for r in list_runs(tmp_path)}
    assert set(rows) == {"good", "bad"}
    assert rows["good"]["final_train_loss"] == 2.0 and rows["good"]["final_val_loss"] == 1.5
    assert rows["bad"]["status"] == "unreadable" and "unreadable" in rows["bad"]["error"]
    with pytest.raises(RunError, match="unreadable"):
        RunDir(bad).read()  # resume needs the record whole


def test_delete_run_refuses_what_is_not_a_run_or_still_training(tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_text("x")
    (other / layout.RUN_FILE).write_text('{"just": "a file of that name"}')
    with pytest.raises(RunError, match="not a run directory"):
        delete_run(other)
    with pytest.raises(RunError, match="not a run directory"):
        delete_run(tmp_path / "missing")
    link = tmp_path / "link"
    live = make_run(tmp_path, "live", status="running", pid=os.getpid())
    link.symlink_to(live.path)
    with pytest.raises(RunError, match="not a run directory"):
        delete_run(link)  # never through a link
    live.acquire()
    try:
        with pytest.raises(RunError, match="still training"):
            delete_run(live.path)
    finally:
        live.release()
    assert other.is_dir() and live.path.is_dir()
    assert is_run_dir(live.path)
    delete_run(live.path)  # killed trainer: interrupted, deletable
    assert not live.path.exists() and (other / "a.jpg").exists()


def test_latest_good_checkpoint_passes_over_a_torn_one(tmp_path):
    run = make_run(tmp_path, "r")
    older, newest = make_checkpoint(run, 2), make_checkpoint(run, 4)
    assert latest_good_checkpoint(run.path) == newest and checkpoint_problem(newest) is None
    opt = newest / layout.OPTIMIZER_FILE
    opt.write_bytes(opt.read_bytes()[:-5])  # torn: shorter than its header says
    assert "truncated" in checkpoint_problem(newest)
    assert latest_checkpoint(run.path) == newest  # complete-looking (its state file is there) ...
    assert latest_good_checkpoint(run.path) == older  # ... but not good
    (older / layout.STATE_FILE).write_text("{}")
    assert "lacks" in checkpoint_problem(older) and latest_good_checkpoint(run.path) is None
    assert read_run(run.path).checkpoint is None


def test_an_older_record_says_its_relative_paths_are_read_from_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("data.jsonl").write_text("{}\n")
    run = make_run(tmp_path, "old", config={"data": "data.jsonl", "model": "owner/hub-model"})
    info = read_run(run.path)
    assert info.resolve("data.jsonl") == str(tmp_path / "data.jsonl")
    assert info.resolve("owner/hub-model") == "owner/hub-model"  # not a local path: as given
    assert len(info.notes) == 1 and "data 'data.jsonl' is relative" in info.notes[0]
    new = make_run(tmp_path, "new", record_version=2, config={"data": "data.jsonl"})
    assert read_run(new.path).notes == [] and read_run(new.path).resolve("data.jsonl") == "data.jsonl"


def test_adapter_runs_are_directories_with_an_adapter(tmp_path):
    run = make_run(tmp_path, "b")
    (run.path / layout.ADAPTER_FILE).write_bytes(b"")
    make_run(tmp_path, "a")  # no adapter yet
    assert adapter_runs(tmp_path) == [("b", str(run.path))]
    assert adapter_runs(tmp_path / "none") == []
