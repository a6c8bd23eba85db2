"""Fixtures for the TUI tests: an isolated working directory, fake (deterministic) runs, a real
tiny trained run, and helpers that wait for workers / conditions instead of sleeping blindly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from run_dirs import make_checkpoint
from tui_helpers import REPO, SAMPLES

from localtune.runs import RunDir, read_run

if str(REPO) not in sys.path:  # the tui package lives at the repository root
    sys.path.insert(0, str(REPO))


@pytest.fixture
def tui_env(tmp_path, monkeypatch):
    """cwd = a fresh directory with data/ and adapters/; no network; models dir inside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("LOCALTUNE_MODELS", str(tmp_path / "models"))
    (tmp_path / "adapters").mkdir()
    (tmp_path / "data").mkdir()
    shutil.copy(SAMPLES / "bad_rows.jsonl", tmp_path / "data" / "bad_rows.jsonl")
    yield tmp_path
    # A failed test must not leave a trainer it started running (they live in their own session);
    # this test process, when it plays a trainer (hold_run), is not one of them.
    for run in (tmp_path / "adapters").iterdir():
        if not run.is_dir():
            continue
        info = read_run(run)
        pid = info.record.get("pid")
        if info.is_training and isinstance(pid, int) and pid > 0 and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


GRPO_REWARDS = ("ifeval", "length:5-50:0.5")  # a fake GRPO run's reward sources


def write_fake_run(root: Path, name: str, *, kind: str = "sft", status: str = "finished", steps: int = 20,
                   offset: float = 0.0, error: str | None = None) -> Path:
    """A run directory with fixed numbers (no clocks), as the trainer would leave it: its record,
    metrics and text logs, and a whole checkpoint of the last step. A "running" record names no
    live trainer: it reads "interrupted" unless a test holds the run (hold_run, stand_in_trainer)."""
    run = RunDir(root / name)
    run.path.mkdir(parents=True)
    info = {"kind": kind, "status": status, "pid": 0, "started": 1000.0, "finished": 1000.0 + 7 * steps,
            "iters": steps, "step": steps,
            "config": {"model": "models/tiny", "data": "data/train.jsonl", "iters": steps, "lr": 1e-4}}
    if error:
        info["error"] = error
    if kind == "grpo":  # as `train grpo` records it: its reward sources, and the metrics it declares
        from localtune.config_grpo import GRPOConfig
        from localtune.train.grpo import grpo_metrics

        cfg = GRPOConfig(data="data/prompts.jsonl", iters=steps, reward=GRPO_REWARDS, group_size=4)
        info["config"] = cfg.to_dict()
        info["metrics"] = [m.to_dict() for m in grpo_metrics(cfg)]
    run.write(info)
    lines = []
    for s in range(1, steps + 1):
        ev = {"event": "train", "step": s, "train_loss": 3.0 - s * 0.08 + offset + 0.05 * (s % 3),
              "tokens_per_sec": 1234.0, "peak_memory_gb": 0.5, "time": 1000.0 + 7 * s}
        if kind == "dpo":
            ev.update(reward_accuracy=min(1.0, 0.4 + s * 0.03), reward_margin=0.1 * s)
        if kind == "grpo":  # the policy-gradient loss hovers near 0; the reward climbs
            ev.update(train_loss=0.01 * (s % 3 - 1), reward_mean=0.2 + s * 0.03, reward_ifeval=0.1 + s * 0.04,
                      reward_length=0.5 + s * 0.01, reward_std=0.3, kl=0.001 * s, ended=0.9, answer_tokens=40.0)
        lines.append(ev)
        if s % 5 == 0 and kind != "grpo":  # no validation set when training on the model's answers
            lines.append({"event": "val", "step": s, "val_loss": 3.1 - s * 0.06 + offset})
    for ev in lines:
        run.append_metric(ev)
    run.log_path.write_text("event=start\nevent=checkpoint step=%d\n" % steps)  # no time stamps
    make_checkpoint(run, steps)
    return run.path


@pytest.fixture(scope="session")
def trained_run(tiny_model_dir, tmp_path_factory):
    """A real 6-step SFT run of the tiny model (made once, read-only): an adapter to chat with."""
    out = tmp_path_factory.mktemp("trained") / "adapters" / "sft-tiny"
    subprocess.run([sys.executable, "-m", "localtune", "train", "sft", "--model", str(tiny_model_dir),
                    "--data", str(SAMPLES / "sft" / "train.jsonl"), "--iters", "2", "--batch-size", "2",
                    "--eval-every", "0", "--out", str(out)],
                   check=True, capture_output=True, cwd=REPO, timeout=120)
    return out
