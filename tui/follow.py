"""Follow a run directory: read only the new bytes of its metrics log and text log, keep the
curves and the latest numbers. Pure Python (no Textual) so it is unit-testable and cheap enough
to call from a timer several times a second. Events are read as localtune.events classes; which
numbers become curves (and their names) comes from the run's metric registry."""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path

from localtune import events
from localtune.errors import RunError
from localtune.runs import LIVE, RunDir, RunInfo, parse_event, run_status
from tui.progress import Plan, RunProgress, format_duration

# the series drawn on each plot (names from the built-in metric registry)
LOSS_SERIES = events.plot_labels("loss")
# localtune.runs owns the status words (LIVE, ENDED, ...) and the rule that reads them; the follower
# adds one: "stopping", from the moment Stop is sent until the trainer writes how it ended.
WORKING = LIVE + ("stopping",)
format_eta = format_duration  # (the name tests and older callers use)


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


class RunFollower:
    def __init__(self, run_dir: str | Path, log_lines: int = 200, clock=time.time):
        self.path = Path(run_dir)
        self.clock = clock  # tests pass a fixed clock: elapsed and ETA become exact
        self.progress = RunProgress()
        self.stop_requested = False  # Stop was sent: say "stopping" before the trainer does
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
        self.new_log: list[str] = []

    # -- reading --------------------------------------------------------------------------
    def poll(self) -> bool:
        """Read what is new; True when anything changed."""
        changed = self._read_info()
        lines = self.metrics.read_new()
        if self.metrics.reset:
            self.metrics.reset = False
            self.series, self.step, self.last, self.latest = {}, 0, {}, {}
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
        status = self.status
        try:
            info = self.run.read()
        except RunError:
            return False
        self.holder = self.run.lock_holder()
        if info != self.info:
            self.info = info
            self.registry = self.record.metrics
            return True
        return self.status != status

    def add_event(self, event: dict) -> None:
        self.progress.add(event)
        ev = events.parse(event)  # a phase (what the run is doing) is never a point on a curve
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

    # -- derived numbers ------------------------------------------------------------------
    @property
    def record(self) -> RunInfo:
        """The record as localtune.runs reads it (its iters, kind, config and metric registry)."""
        return RunInfo(self.path, self.info)

    @property
    def status(self) -> str:
        """The effective status (localtune.runs.run_status: a killed trainer reads "interrupted"), and
        "stopping" from the moment Stop is sent or the trainer says so."""
        status = run_status(self.info, self.holder) if self.info else "starting"
        phase = self.progress.phase
        if status in LIVE and (self.stop_requested or (phase is not None and phase.name == "stopping")):
            return "stopping"
        return status

    @property
    def iters(self) -> int | None:
        return self.record.iters

    @property
    def reward_series(self) -> tuple[str, ...]:
        """The reward plot's series names: the built-in ones and the run's own (GRPO's reward)."""
        return events.plot_labels("reward", self.registry)

    @property
    def on_answers(self) -> bool:
        """The run trains on the model's own answers (GRPO, online DPO: its config has reward
        sources): its reward is the measure of progress, the policy-gradient loss is not."""
        return bool(self.record.config.get("reward"))

    @property
    def is_dpo(self) -> bool:
        """The run has a reward plot to show (DPO, GRPO, ...)."""
        return self.record.kind == "dpo" or any(n in self.series for n in self.reward_series)

    @property
    def plan(self) -> Plan:
        cfg = self.record.config
        return Plan(self.iters, int(cfg.get("eval_every") or 0), int(cfg.get("save_every") or 0),
                    bool(cfg.get("valid")) or bool(self.series.get("valid")))

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def eta(self) -> tuple[float | None, bool]:
        """(seconds left, complete): see RunProgress.remaining. (0, True) once the run is over."""
        if self.status not in WORKING:
            return 0.0, True
        return self.progress.remaining(self.plan, self.clock())

    def plot_series(self, plot: str) -> dict[str, tuple[list, list]]:
        """The curves of one plot ("loss", "reward", "answers"), by the run's own metric registry."""
        return {n: self.series[n] for n in events.plot_labels(plot, self.registry) if n in self.series}

    def eta_seconds(self) -> float | None:
        return self.eta()[0]

    def fraction(self) -> float:
        return self.progress.fraction(self.plan, self.finished)

    def elapsed(self) -> float | None:
        start = self.info.get("started")
        if not isinstance(start, (int, float)):
            return None
        end = self.info.get("finished") if self.status not in WORKING else None
        return (end if isinstance(end, (int, float)) else self.clock()) - start

    def activity(self) -> str:
        """What the run is doing now, with counts, elapsed time and the ETA."""
        status = self.status
        step = max(self.step, self.progress.step)
        parts = []
        if status in LIVE:
            parts.append(self._phase_words(status, step))
        else:
            parts.append(status)
        if self.iters and (step or status in WORKING):
            parts.append(f"step {step}/{self.iters}")
        parts.append(f"elapsed {format_duration(self.elapsed())}")
        if status in LIVE:
            parts.append(self.eta_text())
        return " · ".join(parts)

    def _phase_words(self, status: str, step: int) -> str:
        phase = self.progress.phase
        if phase is not None:
            return phase.describe()
        # An engine without phase events: what the run record's status and the loop's order imply.
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
        return events.summary_text(self.latest, self.registry) or "no numbers yet"


def load_run(run_dir: str | Path) -> RunFollower:
    """A follower that has read everything there is (for the Runs screen)."""
    follower = RunFollower(run_dir)
    follower.poll()
    return follower
