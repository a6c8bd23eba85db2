"""Follow a run directory: read only the new bytes of metrics.jsonl and train.log, keep the
curves and the latest numbers. Pure Python (no Textual) so it is unit-testable and cheap enough
to call from a timer several times a second."""

from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path

from localtune.runs import parse_event, pid_alive

# metric key -> series name shown in the plots
SERIES = {
    "train_loss": "train", "val_loss": "valid",
    "reward_accuracy": "reward acc", "val_reward_accuracy": "val reward acc",
    "reward_margin": "margin", "val_reward_margin": "val margin",
    "margin": "margin", "val_margin": "val margin",  # older/alternative spellings
}
LOSS_SERIES = ("train", "valid")
DPO_SERIES = ("reward acc", "val reward acc", "margin", "val margin")
DONE = ("finished", "failed", "stopped")


class FileTail:
    """Complete new lines of a growing file. A replaced or shrunk file (a resume rewrites
    metrics.jsonl) starts over and sets `reset`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.offset = 0
        self.inode = None
        self.partial = b""
        self.reset = False

    def read_new(self) -> list[str]:
        try:
            st = os.stat(self.path)
        except OSError:
            return []
        if self.inode is not None and (st.st_ino != self.inode or st.st_size < self.offset):
            self.offset, self.partial, self.reset = 0, b"", True
        self.inode = st.st_ino
        if st.st_size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        return [ln.decode("utf-8", "replace") for ln in lines if ln.strip()]


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class RunFollower:
    def __init__(self, run_dir: str | Path, log_lines: int = 200):
        self.path = Path(run_dir)
        self.metrics = FileTail(self.path / "metrics.jsonl")
        self.log = FileTail(self.path / "train.log")
        self.log_tail: deque[str] = deque(maxlen=log_lines)
        self.series: dict[str, tuple[list, list]] = {}
        self.info: dict = {}
        self.step = 0
        self.last: dict = {}  # latest train event
        self._first_timed: tuple[int, float] | None = None
        self.new_log: list[str] = []

    # -- reading --------------------------------------------------------------------------
    def poll(self) -> bool:
        """Read what is new; True when anything changed."""
        changed = self._read_info()
        lines = self.metrics.read_new()
        if self.metrics.reset:
            self.metrics.reset = False
            self.series, self.step, self.last, self._first_timed = {}, 0, {}, None
            changed = True
        for line in lines:
            event = parse_event(line)
            if event is not None:
                self.add_event(event)
                changed = True
        self.new_log = self.log.read_new()
        self.log_tail.extend(self.new_log)
        return changed or bool(self.new_log)

    def _read_info(self) -> bool:
        try:
            info = json.loads((self.path / "run.json").read_text())
        except (OSError, ValueError):
            return False
        if info != self.info:
            self.info = info
            return True
        return False

    def add_event(self, event: dict) -> None:
        step = int(event.get("step", 0) or 0)
        self.step = max(self.step, step)
        for key, name in SERIES.items():
            value = event.get(key)
            if isinstance(value, (int, float)):
                xs, ys = self.series.setdefault(name, ([], []))
                xs.append(step)
                ys.append(float(value))
        if "train_loss" in event:
            self.last = event
            if "time" in event and self._first_timed is None:
                self._first_timed = (step, float(event["time"]))

    # -- derived numbers ------------------------------------------------------------------
    @property
    def status(self) -> str:
        status = self.info.get("status", "starting")
        if status in ("starting", "running") and self.info.get("pid") and not pid_alive(int(self.info["pid"])):
            return "interrupted"  # killed without a chance to say so; resumable
        return status

    @property
    def iters(self) -> int | None:
        it = self.info.get("iters") or self.info.get("config", {}).get("iters")
        return int(it) if it else None

    @property
    def is_dpo(self) -> bool:
        return self.info.get("kind") == "dpo" or any(n in self.series for n in DPO_SERIES)

    def eta_seconds(self) -> float | None:
        """From the wall time between train reports (deterministic given metrics.jsonl)."""
        if not self.iters or self._first_timed is None or "time" not in self.last:
            return None
        s0, t0 = self._first_timed
        s1, t1 = int(self.last.get("step", 0)), float(self.last["time"])
        if s1 <= s0:
            return None
        if self.status in DONE:
            return 0.0
        return max(0.0, (self.iters - s1) * (t1 - t0) / (s1 - s0))

    def summary(self) -> str:
        """One line of the latest numbers."""
        parts = [f"step {self.step}/{self.iters or '?'}"]
        for name in ("train", "valid"):
            if self.series.get(name):
                parts.append(f"{name} {self.series[name][1][-1]:.4f}")
        if "tokens_per_sec" in self.last:
            parts.append(f"{self.last['tokens_per_sec']:.0f} tok/s")
        if "peak_memory_gb" in self.last:
            parts.append(f"peak {self.last['peak_memory_gb']:.2f} GB")
        if self.is_dpo:
            for name in ("reward acc", "margin"):
                if self.series.get(name):
                    parts.append(f"{name} {self.series[name][1][-1]:.3f}")
        parts.append(f"ETA {format_eta(self.eta_seconds())}")
        return "  ".join(parts)


def load_run(run_dir: str | Path) -> RunFollower:
    """A follower that has read everything there is (for the Runs screen)."""
    follower = RunFollower(run_dir)
    follower.poll()
    return follower
