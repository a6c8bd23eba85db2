"""Follow a run directory: read only the new bytes of metrics.jsonl and train.log, keep the
curves and the latest numbers. Pure Python (no Textual) so it is unit-testable and cheap enough
to call from a timer several times a second."""

from __future__ import annotations

import json
import os
import time
from collections import deque
from pathlib import Path

from localtune.runs import parse_event, pid_alive
from tui.progress import Plan, RunProgress, format_duration

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
ACTIVE = ("starting", "running")
format_eta = format_duration  # (the name tests and older callers use)


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


class RunFollower:
    def __init__(self, run_dir: str | Path, log_lines: int = 200, clock=time.time):
        self.path = Path(run_dir)
        self.clock = clock  # tests pass a fixed clock: elapsed and ETA become exact
        self.progress = RunProgress()
        self.stop_requested = False  # Stop was sent: say "stopping" before the trainer does
        self.metrics = FileTail(self.path / "metrics.jsonl")
        self.log = FileTail(self.path / "train.log")
        self.log_tail: deque[str] = deque(maxlen=log_lines)
        self.series: dict[str, tuple[list, list]] = {}
        self.info: dict = {}
        self.step = 0
        self.last: dict = {}  # latest train event
        self.new_log: list[str] = []

    # -- reading --------------------------------------------------------------------------
    def poll(self) -> bool:
        """Read what is new; True when anything changed."""
        changed = self._read_info()
        lines = self.metrics.read_new()
        if self.metrics.reset:
            self.metrics.reset = False
            self.series, self.step, self.last = {}, 0, {}
            self.progress = RunProgress()
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
        self.progress.add(event)
        if event.get("event") == "phase":  # what the run is doing: never a point on a curve
            return
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

    # -- derived numbers ------------------------------------------------------------------
    @property
    def status(self) -> str:
        status = self.info.get("status", "starting")
        if status in ACTIVE and self.info.get("pid") and not pid_alive(int(self.info["pid"])):
            return "interrupted"  # killed without a chance to say so; resumable
        phase = self.progress.phase
        if status in ACTIVE and (self.stop_requested or (phase is not None and phase.name == "stopping")):
            return "stopping"
        return status

    @property
    def iters(self) -> int | None:
        it = self.info.get("iters") or self.info.get("config", {}).get("iters")
        return int(it) if it else None

    @property
    def is_dpo(self) -> bool:
        return self.info.get("kind") == "dpo" or any(n in self.series for n in DPO_SERIES)

    @property
    def plan(self) -> Plan:
        cfg = self.info.get("config", {})
        return Plan(self.iters, int(cfg.get("eval_every") or 0), int(cfg.get("save_every") or 0),
                    bool(cfg.get("valid")) or bool(self.series.get("valid")))

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def eta(self) -> tuple[float | None, bool]:
        """(seconds left, complete): see RunProgress.remaining. (0, True) once the run is over."""
        if self.status in DONE or self.status == "interrupted":
            return 0.0, True
        return self.progress.remaining(self.plan, self.clock())

    def eta_seconds(self) -> float | None:
        return self.eta()[0]

    def fraction(self) -> float:
        return self.progress.fraction(self.plan, self.finished)

    def elapsed(self) -> float | None:
        start = self.info.get("started")
        if not isinstance(start, (int, float)):
            return None
        end = self.info.get("finished") if self.status not in ACTIVE + ("stopping",) else None
        return (end if isinstance(end, (int, float)) else self.clock()) - start

    def activity(self) -> str:
        """What the run is doing now, with counts, elapsed time and the ETA."""
        status = self.status
        step = max(self.step, self.progress.step)
        parts = []
        if status in ACTIVE:
            parts.append(self._phase_words(status, step))
        else:
            parts.append(status)
        if self.iters and (step or status in ACTIVE + ("stopping",)):
            parts.append(f"step {step}/{self.iters}")
        parts.append(f"elapsed {format_duration(self.elapsed())}")
        if status in ACTIVE:
            parts.append(self.eta_text())
        return " · ".join(parts)

    def _phase_words(self, status: str, step: int) -> str:
        phase = self.progress.phase
        if phase is not None:
            return phase.describe()
        # An engine without phase events: what run.json's status and the loop's order imply.
        if status == "starting":
            return "starting: loading the model and data"
        if step == 0 and self.plan.has_valid and self.progress.last_eval_step is None:
            return "evaluating the untrained model"  # the loop scores step 0 before training
        return "training"

    def eta_text(self) -> str:
        left, complete = self.eta()
        if left is None or (not complete and left < 1):
            return "ETA --"
        if left < 1:
            return "finishing"
        return f"ETA {'' if complete else '>'}{format_duration(left)}"

    def summary(self) -> str:
        """One line of the latest numbers."""
        parts = []
        for name in ("train", "valid"):
            if self.series.get(name):
                parts.append(f"{name} {self.series[name][1][-1]:.4f}")
        if "tokens_per_sec" in self.last:
            parts.append(f"{self.last['tokens_per_sec']:.0f} tok/s")
        if "peak_memory_gb" in self.last:
            parts.append(f"peak {self.last['peak_memory_gb']:.2f} GB")
        if self.is_dpo:
            for name, short in (("reward acc", "acc"), ("margin", "margin")):
                if self.series.get(name):
                    parts.append(f"{short} {self.series[name][1][-1]:.3f}")
        return "  ".join(parts) or "no numbers yet"


def load_run(run_dir: str | Path) -> RunFollower:
    """A follower that has read everything there is (for the Runs screen)."""
    follower = RunFollower(run_dir)
    follower.poll()
    return follower
