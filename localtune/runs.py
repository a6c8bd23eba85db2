"""The run directory: the contract between engine, CLI and TUI (see shared/DESIGN.md).

adapters/<run>/run.json, adapter_config.json, adapters.safetensors, metrics.jsonl,
checkpoints/step-N/, train.log. run.json is rewritten atomically; metrics.jsonl and train.log are
append-only with one write per line, and readers skip a torn last line.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from localtune.errors import RunError
from localtune.fsutil import atomic_write_json, atomic_write_text

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
LOCK_FILE = ".lock"
DEFAULT_ROOT = Path("adapters")


def default_run_name(kind: str) -> str:
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._locked = False

    # -- lifecycle ---------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the run's lock: one trainer per run directory. A stale lock (dead pid) is replaced."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / LOCK_FILE
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.lock_holder()
                if holder and holder.get("host") == socket.gethostname() and not pid_alive(holder["pid"]):
                    lock.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                if holder is None:
                    lock.unlink(missing_ok=True)  # unreadable lock = torn write of a dead process
                    continue
                raise RunError(
                    f"{self.path}: in use by process {holder.get('pid')} on {holder.get('host')} "
                    f"(remove {lock} if that process is gone)"
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}, f)
            self._locked = True
            return
        raise RunError(f"{self.path}: could not take the run lock")

    def release(self) -> None:
        if self._locked:
            (self.path / LOCK_FILE).unlink(missing_ok=True)
            self._locked = False

    def lock_holder(self) -> dict | None:
        try:
            return json.loads((self.path / LOCK_FILE).read_text())
        except (OSError, json.JSONDecodeError, ValueError):
            return None

    # -- run.json ---------------------------------------------------------------------------
    def read(self) -> dict:
        try:
            info = json.loads((self.path / RUN_FILE).read_text())
        except FileNotFoundError:
            raise RunError(f"{self.path}: not a run directory (no {RUN_FILE})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunError(f"{self.path / RUN_FILE}: unreadable: {e}") from None
        except IsADirectoryError:
            raise RunError(f"{self.path / RUN_FILE}: is a directory, not a run file") from None
        if not isinstance(info, dict):
            raise RunError(f"{self.path / RUN_FILE}: unreadable: not a JSON object")
        return info

    def exists(self) -> bool:
        return (self.path / RUN_FILE).exists()

    def write(self, info: dict) -> None:
        atomic_write_json(self.path / RUN_FILE, info)

    def update(self, **fields) -> dict:
        info = self.read() if self.exists() else {}
        info.update(fields)
        self.write(info)
        return info

    # -- metrics and log --------------------------------------------------------------------
    def append_metric(self, event: dict) -> None:
        _append_line(self.path / METRICS_FILE, json.dumps(event))

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        _append_line(self.path / LOG_FILE, f"{stamp} {message}")

    def metrics(self) -> list[dict]:
        return read_metrics(self.path / METRICS_FILE)

    def truncate_metrics(self, step: int) -> None:
        """On resume: drop events after the checkpoint's step so the curve is not doubled."""
        kept = [e for e in self.metrics() if e.get("step", 0) <= step]
        atomic_write_text(self.path / METRICS_FILE, "".join(json.dumps(e) + "\n" for e in kept))


def _append_line(path: Path, line: str) -> None:
    # One write() of the whole line on an O_APPEND descriptor: lines never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def parse_event(line: str) -> dict | None:
    """One metrics.jsonl line as an event; None for a blank, torn or non-object line."""
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
    """Every complete JSON line; a torn or corrupt line (a killed writer) is skipped."""
    events = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                event = parse_event(line)
                if event is not None:
                    events.append(event)
    except FileNotFoundError:
        pass
    return events


def list_runs(root: str | Path = DEFAULT_ROOT) -> list[dict]:
    """Every run under `root`, newest first, with its run.json and last losses."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = []
    for d in root.iterdir():
        if not (d / RUN_FILE).exists():
            continue
        try:
            info = RunDir(d).read()
        except RunError:
            continue
        status = info.get("status", "?")
        if status == "running" and not pid_alive(int(info.get("pid", 0) or 0)):
            status = "interrupted"  # killed without a chance to say so; resumable
        events = read_metrics(d / METRICS_FILE)
        train = [e["train_loss"] for e in events if e.get("train_loss") is not None]
        val = [e["val_loss"] for e in events if e.get("val_loss") is not None]
        runs.append(
            {
                "name": d.name,
                "path": str(d),
                **info,
                "status": status,
                "final_train_loss": train[-1] if train else None,
                "final_val_loss": val[-1] if val else None,
            }
        )
    return sorted(runs, key=lambda r: r.get("started", 0), reverse=True)
