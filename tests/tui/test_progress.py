"""Phases, counts and honest ETAs from synthetic metrics.jsonl files (the engine's `phase` event
spec: {"event": "phase", "phase", "done", "total", "time"}); no clocks, no processes."""

from __future__ import annotations

import json
import os

import pytest

from localtune.runs import RunDir
from tui.follow import RunFollower
from tui.progress import Plan, RunProgress, points


def phase(name, done=None, total=None, t=0.0):
    return {"event": "phase", "phase": name, "done": done, "total": total, "time": t}


def train(step, elapsed, t, loss=2.0):
    return {"event": "train", "step": step, "train_loss": loss, "elapsed": elapsed, "time": t,
            "tokens_per_sec": 100.0, "peak_memory_gb": 0.5}


@pytest.fixture
def make_run(tmp_path, hold_run):
    """make_run(events, ...) -> the run directory: its record and metrics log (rewritten on each
    call), with this test process as its live trainer (hold_run)."""

    def make(events, *, iters=30, eval_every=10, save_every=10, valid=True, status="running", kind="sft",
             started=0.0):
        run = RunDir(tmp_path / "run")
        run.path.mkdir(exist_ok=True)
        run.write({"kind": kind, "status": status, "pid": os.getpid(), "started": started, "iters": iters,
                   "config": {"iters": iters, "eval_every": eval_every, "save_every": save_every,
                              "valid": "data/valid.jsonl" if valid else None}})
        run.metrics_path.write_text("".join(json.dumps(e) + "\n" for e in events))
        hold_run(run.path)
        return run.path

    return make


def follow(run, now):
    f = RunFollower(run, clock=lambda: now)
    f.poll()
    return f


# A run seen up to step 10 (before its step-10 evaluation): 1 s per validation batch (5 batches),
# 2 s per training step, 1 s per checkpoint save.
FIRST_TEN = [
    phase("loading_model", t=0), phase("preparing_data", t=4),
    phase("evaluating", 0, 5, t=10), phase("evaluating", 5, 5, t=15),
    {"event": "val", "step": 0, "val_loss": 3.0, "val_time": 5.0},
    phase("training", 0, 30, t=15),
    train(1, 2.0, 17), train(10, 20.0, 35),
]


def test_eta_adds_steps_evaluations_and_saves(make_run):
    f = follow(make_run(FIRST_TEN), now=35)
    # 20 steps x 2 s + evaluations at 10, 20, 30 x 5 s; no save timed yet (none happened)
    assert f.eta() == (pytest.approx(20 * 2 + 3 * 5), True)
    assert f.activity() == "training · step 10/30 · elapsed 0:35 · ETA 0:55"
    events = FIRST_TEN + [phase("evaluating", 0, 5, t=35), phase("evaluating", 2, 5, t=37)]
    f = follow(make_run(events), now=37)
    # in the step-10 evaluation: 3 batches x 1 s left of it, then 20 steps and 2 evaluations
    assert f.eta() == (pytest.approx(3 + 40 + 10), True)
    assert f.activity().startswith("evaluating 2/5 · step 10/30")


def test_saving_is_timed_once_seen(make_run):
    events = FIRST_TEN + [phase("evaluating", 0, 5, t=35), phase("evaluating", 5, 5, t=40),
                          phase("saving", t=40), phase("training", 10, 30, t=41)]
    f = follow(make_run(events), now=41)
    assert f.progress.seconds_per_save() == pytest.approx(1.0)
    # 20 steps x 2 + evaluations at 20, 30 x 5 + saves at 20, 30 x 1
    assert f.eta() == (pytest.approx(40 + 10 + 2), True)


def test_scoring_reference_shows_counts_and_a_lower_bound(make_run):
    events = [phase("loading_model", t=0), phase("scoring_reference", 0, 400, t=10),
              phase("scoring_reference", 100, 400, t=30)]
    f = follow(make_run(events, kind="dpo"), now=30)
    assert f.activity() == "scoring reference 100/400 · step 0/30 · elapsed 0:30 · ETA >1:00"
    left, complete = f.eta()
    assert left == pytest.approx(300 * 0.2) and not complete  # training has no rate yet


def test_first_evaluation_is_named_not_waiting(make_run):
    events = [phase("loading_model", t=0), phase("evaluating", 0, 10, t=5), phase("evaluating", 3, 10, t=8)]
    f = follow(make_run(events), now=8)
    assert f.activity().startswith("evaluating 3/10")
    # 7 batches x 1 s left, then evaluations at 10, 20, 30 (10 batches each); steps still untimed
    assert f.eta_text() == "ETA >0:37"


def test_the_last_evaluation_is_not_100_percent_and_not_eta_zero(make_run):
    events = FIRST_TEN + [train(30, 60.0, 80), phase("evaluating", 0, 5, t=80), phase("evaluating", 1, 5, t=81)]
    f = follow(make_run(events), now=81)
    assert f.progress.step == 30
    assert f.fraction() < 1.0
    assert f.eta() == (pytest.approx(4.0), True)
    assert f.eta_text() == "ETA 0:04"
    f = follow(make_run(events + [phase("saving", t=85)]), now=90)
    assert f.activity().startswith("saving · step 30/30") and f.eta_text() == "ETA --"
    assert f.fraction() < 1.0
    f = follow(make_run(events + [phase("saving", t=85)], status="finished"), now=90)
    assert f.fraction() == 1.0 and "ETA" not in f.activity()


def test_without_phase_events_the_eta_still_counts_evaluations(make_run):
    # today's engine: val events carry val_time; train events carry elapsed
    events = [{"event": "val", "step": 0, "val_loss": 3.0, "val_time": 6.0}, train(1, 2.0, 10),
              train(10, 20.0, 28)]
    f = follow(make_run(events), now=28)
    assert f.eta() == (pytest.approx(20 * 2 + 3 * 6), True)


def test_phase_events_are_never_curve_points(make_run):
    f = follow(make_run(FIRST_TEN), now=35)
    assert set(f.series) == {"train", "valid"}
    assert f.series["train"] == ([1, 10], [2.0, 2.0]) and f.series["valid"] == ([0], [3.0])


def test_stop_requested_reads_stopping_and_so_does_the_stopping_phase(make_run):
    f = follow(make_run(FIRST_TEN), now=35)
    assert f.status == "running"
    f.stop_requested = True
    assert f.status == "stopping" and f.activity().startswith("stopping")
    f = follow(make_run(FIRST_TEN + [phase("stopping", t=36)]), now=36)
    assert f.status == "stopping" and f.eta_text() == "ETA --"


def test_points():
    assert points(1, 30, 10, last=30) == [10, 20, 30]
    assert points(11, 25, 10, last=25) == [20, 25]
    assert points(1, 5, 0, last=5) == [5]
    progress = RunProgress()
    assert progress.evals_to_come(Plan(30, 10, 10, True)) == 4  # 0 (before training), 10, 20, 30
