"""Follow a run directory: read only the new bytes of its metrics log and text log, keep the
curves and the latest numbers. Pure Python (no Textual) so it is unit-testable and cheap enough
to call from a timer several times a second. Events are read as localtune.events classes; which
numbers become curves (and their names) comes from the run's metric registry."""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

from localtune import events
from localtune.errors import RunError
from localtune.runs import RunDir, parse_event, run_status

# metric key -> series name shown in the plots (the built-in registry; a run may declare more)
SERIES = {m.key: m.label for m in events.METRICS if m.plot}
LOSS_SERIES = events.plot_labels("loss")
DPO_SERIES = events.plot_labels("reward")
DONE = ("finished", "failed", "stopped")


class FileTail:
    """Complete new lines of a growing file. A replaced or shrunk file (a resume rewrites the
    metrics log) starts over and sets `reset`."""

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
        self.run = RunDir(self.path)
        self.metrics = FileTail(self.run.metrics_path)
        self.log = FileTail(self.run.log_path)
        self.log_tail: deque[str] = deque(maxlen=log_lines)
        self.series: dict[str, tuple[list, list]] = {}
        self.info: dict = {}  # the run's record
        self.holder: dict | None = None  # who holds the run's lock
        self.registry = events.metric_set()
        self.step = 0
        self.last: dict = {}  # latest train event
        self.latest: dict = {}  # latest value of each metric key
        self.phase: events.Phase | None = None  # latest stage of the trainer
        self._first_timed: tuple[int, float] | None = None
        self.new_log: list[str] = []

    # -- reading --------------------------------------------------------------------------
    def poll(self) -> bool:
        """Read what is new; True when anything changed."""
        changed = self._read_info()
        lines = self.metrics.read_new()
        if self.metrics.reset:
            self.metrics.reset = False
            self.series, self.step, self.last, self.latest, self._first_timed = {}, 0, {}, {}, None
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
        status = self.status
        try:
            info = self.run.read()
        except RunError:
            return False
        self.holder = self.run.lock_holder()
        if info != self.info:
            self.info = info
            self.registry = events.metric_set(info.get("metrics") or ())
            return True
        return self.status != status

    def add_event(self, event: dict) -> None:
        ev = events.parse(event)
        if isinstance(ev, events.Phase):
            self.phase = ev
            return
        if not isinstance(ev, (events.Train, events.Val, events.Skipped)):
            return
        step = int(ev.step or 0)
        self.step = max(self.step, step)
        values = ev.values() if isinstance(ev, (events.Train, events.Val)) else {}
        self.latest.update(values)
        for key, value in values.items():
            metric = self.registry.get(key)
            if metric is not None and metric.plot:
                xs, ys = self.series.setdefault(metric.label, ([], []))
                xs.append(step)
                ys.append(float(value))
        if isinstance(ev, events.Train):
            self.last = event
            if ev.time and self._first_timed is None:
                self._first_timed = (step, float(ev.time))

    # -- derived numbers ------------------------------------------------------------------
    @property
    def status(self) -> str:
        """The effective status (localtune.runs.run_status: a killed trainer reads "interrupted")."""
        return run_status(self.info, self.holder) if self.info else "starting"

    @property
    def iters(self) -> int | None:
        it = self.info.get("iters") or self.info.get("config", {}).get("iters")
        return int(it) if it else None

    @property
    def reward_series(self) -> tuple[str, ...]:
        """The reward plot's series names: the built-in ones and the run's own (GRPO's reward)."""
        return events.plot_labels("reward", self.registry)

    @property
    def is_dpo(self) -> bool:
        """The run has a reward plot to show (DPO, GRPO, ...)."""
        return self.info.get("kind") == "dpo" or any(n in self.series for n in self.reward_series)

    def eta_seconds(self) -> float | None:
        """From the wall time between train reports (deterministic given the metrics log)."""
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
        parts = [f"step {self.step}/{self.iters or '?'}", events.summary_text(self.latest, self.registry),
                 f"ETA {format_eta(self.eta_seconds())}"]
        return "  ".join(p for p in parts if p)


def load_run(run_dir: str | Path) -> RunFollower:
    """A follower that has read everything there is (for the Runs screen)."""
    follower = RunFollower(run_dir)
    follower.poll()
    return follower
