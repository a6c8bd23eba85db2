"""Training runs as a separate process (`python -m localtune train ...`) in its own session, so
closing the UI never kills it and a crash in training never takes the UI down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from localtune.runs import RunDir, layout, read_run

CONFIG_NAME = layout.UI_CONFIG  # the form's values, written into the run directory
CONSOLE_NAME = layout.CONSOLE_LOG  # the trainer's stdout and stderr


def write_config(path: str | Path, values: dict, kind: str | None = None) -> Path:
    """The form's values as a config YAML (atomically); with `kind`, a first comment line says
    the command that trains it (YAML comments are ignored by every reader)."""
    from localtune.fsutil import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items() if v not in (None, "")}
    head = f"# localtune train {kind} --config {path.name}\n" if kind else ""
    atomic_write_text(path, head + yaml.safe_dump(clean, sort_keys=False))
    return path


def mode_config(kind: str, values: dict):
    """The config `localtune train KIND --config` would build from these form values: the same
    YAML round trip as start_training (type checks, defaults and the mode's own checks included),
    so a bad value is refused in the form, and a plan describes that run."""
    from localtune.config import build_config
    from tui.train_modes import MODES

    with tempfile.TemporaryDirectory() as tmp:
        return build_config(write_config(Path(tmp) / CONFIG_NAME, values), cls=MODES[kind].config_class)


def train_config(values: dict):
    """The SFT TrainConfig of these form values (what `localtune plan` predicts)."""
    return mode_config("sft", values)


def _spawn(args: list[str], run_dir: Path, cwd: str | Path | None) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    console = open(RunDir(run_dir).console_log, "ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "localtune", *args],
            cwd=cwd, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: the UI closing or Ctrl-C never reaches it
        )
    finally:
        console.close()


def start_training(kind: str, values: dict, run_dir: str | Path, cwd=None) -> subprocess.Popen:
    """Write the form's values as the run's YAML config and start the trainer on it."""
    run_dir = Path(run_dir)
    if RunDir(run_dir).exists():
        raise FileExistsError(f"{run_dir} is already a run; pick another name or resume it")
    cfg = write_config(RunDir(run_dir).ui_config, {**values, "out": str(run_dir)}, kind=kind)
    return _spawn(["train", kind, "--config", str(cfg)], run_dir, cwd)


def resume_training(run_dir: str | Path, cwd=None) -> subprocess.Popen:
    run_dir = Path(run_dir)
    kind = RunDir(run_dir).read().get("kind", "sft")
    return _spawn(["train", kind, "--resume", str(run_dir)], run_dir, cwd)


def stop_run(run_dir: str | Path) -> int:
    """SIGTERM to the run's trainer (the pid in its record): it checkpoints and marks itself stopped."""
    info = read_run(run_dir)
    pid = int(info.record.get("pid") or 0)
    if pid <= 0 or not info.is_training:
        raise ProcessLookupError(f"{Path(run_dir).name} is not running (status {info.status})")
    os.kill(pid, signal.SIGTERM)
    return pid


def console_tail(run_dir: str | Path, lines: int = 5) -> str:
    try:
        text = RunDir(run_dir).console_log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
