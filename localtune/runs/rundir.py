"""One run directory: its lock, its record (run.json), its metrics log and its text log.

The record is rewritten atomically; the metrics log and the text log are append-only with one write
per line, and readers skip a torn last line (a killed writer).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from localtune.errors import RunError
from localtune.fsutil import atomic_write_json, atomic_write_text
from localtune.runs import layout
from localtune.runs.lock import PidLock


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = PidLock(self.path / layout.LOCK_FILE)

    # -- where things are ---------------------------------------------------------------------
    @property
    def record_path(self) -> Path:
        return self.path / layout.RUN_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / layout.METRICS_FILE

    @property
    def log_path(self) -> Path:
        return self.path / layout.LOG_FILE

    @property
    def lock_path(self) -> Path:
        return self.path / layout.LOCK_FILE

    @property
    def adapter_path(self) -> Path:
        return self.path / layout.ADAPTER_FILE

    @property
    def reward_head_path(self) -> Path:
        return self.path / layout.REWARD_HEAD_FILE

    @property
    def reference_dir(self) -> Path:
        return self.path / layout.REFERENCE_DIR

    @property
    def start_adapter_dir(self) -> Path:
        return self.path / layout.START_ADAPTER_DIR

    @property
    def loss_png(self) -> Path:
        return self.path / layout.LOSS_PNG

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / layout.TENSORBOARD_DIR

    @property
    def console_log(self) -> Path:
        return self.path / layout.CONSOLE_LOG

    @property
    def ui_config(self) -> Path:
        return self.path / layout.UI_CONFIG

    def eval_dir(self, name: str) -> Path:
        return self.path / layout.EVAL_DIR / name

    def feedback_dir(self, name: str) -> Path:
        return self.path / layout.FEEDBACK_DIR / name

    # -- lock: one trainer per run directory (runs/lock.py) ----------------------------------------
    def acquire(self) -> None:
        """Take the run's lock. A stale lock (its process is gone, or a zombie) is replaced."""
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    def lock_holder(self) -> dict | None:
        return self._lock.holder()

    # -- the record (run.json) --------------------------------------------------------------------
    def read(self) -> dict:
        """The record, strictly: RunError when it is missing or unreadable (resume needs it whole)."""
        try:
            info = json.loads(self.record_path.read_text())
        except FileNotFoundError:
            raise RunError(f"{self.path}: not a run directory (no {layout.RUN_FILE})") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RunError(f"{self.record_path}: unreadable: {e}") from None
        if not isinstance(info, dict):
            raise RunError(f"{self.record_path}: unreadable: not a JSON object")
        return info

    def exists(self) -> bool:
        return self.record_path.exists()

    def write(self, info: dict) -> None:
        atomic_write_json(self.record_path, info)

    def update(self, **fields) -> dict:
        info = self.read() if self.exists() else {}
        info.update(fields)
        self.write(info)
        return info

    def info(self):
        """The record read tolerantly, with the effective status (see runs.info.RunInfo)."""
        from localtune.runs.info import read_run

        return read_run(self.path)

    # -- metrics log and text log -------------------------------------------------------------------
    def append_metric(self, event: dict) -> None:
        _append_line(self.metrics_path, json.dumps(event))

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        _append_line(self.log_path, f"{stamp} {message}")

    def metrics(self) -> list[dict]:
        return read_metrics(self.metrics_path)

    def truncate_metrics(self, step: int) -> None:
        """On resume: drop reports after the checkpoint's step so the curve is not doubled."""
        kept = [e for e in self.metrics() if e.get("step", 0) <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(e) + "\n" for e in kept))


def _append_line(path: Path, line: str) -> None:
    # One write() of the whole line on an O_APPEND descriptor: lines never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def parse_event(line: str) -> dict | None:
    """One metrics line as an event dict; None for a blank, torn or non-object line."""
    line = line.strip()
    if not line:
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("step", 0), int):
        return None  # a step that is not a number would break every reader's sort and compare
    return obj


def read_metrics(path: str | Path) -> list[dict]:
    """Every complete event of a metrics log (a run directory or the log file itself); a torn or
    corrupt line (a killed writer) is skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / layout.METRICS_FILE
    events = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                event = parse_event(line)
                if event is not None:
                    events.append(event)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return events
