"""Show training events: a rich progress bar on a terminal, plain lines otherwise (logs, TUI).

Events arrive as dicts (localtune/events.py); each kind has one handler below. Which numbers the
progress line shows, and how, comes from the metric registry (events.METRICS and the run's own)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from localtune import events

MAX_PROBLEMS_SHOWN = 10


def _safe(text) -> str:
    """Data text as rich prints it literally: no terminal escapes, no "[markup]" taken as style."""
    from rich.markup import escape

    from localtune.safetext import printable

    return escape(printable(str(text), one_line=True))


class TrainingDisplay:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=False)
        self.live = self.console.is_terminal
        self.progress: Progress | None = None  # the training bar, from `start` to `done`
        self.waiting: Progress | None = None  # a spinner for the stages before it (live only)
        self.task = self.wait_task = None
        self.problems = 0
        self.values: dict = {}  # latest number of each metric key
        self.metrics = events.metric_set()
        self.phase: events.Phase | None = None
        self.started = False  # a `start` event came: the loop is running
        self.handlers = {
            events.DataProblem: self._data_problem, events.Data: self._data, events.Download: self._message,
            events.Import: self._message, events.Model: self._model, events.Resumed: self._resumed,
            events.Start: self._start, events.Train: self._train, events.Val: self._val,
            events.Reference: self._reference, events.Checkpoint: self._checkpoint, events.Done: self._done,
            events.Stopped: self._stopped, events.Skipped: self._skipped, events.Phase: self._phase,
            events.Notice: self._notice, events.Warn: self._warn, events.UnusableCheckpoint: self._unusable,
            events.EarlyStop: self._said, events.BestCheckpoint: self._said,
        }

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for bar in (self.progress, self.waiting):
            if bar:
                bar.stop()
        self.progress = self.waiting = None

    def __call__(self, e: dict) -> None:
        ev = events.parse(e)
        handler = self.handlers.get(type(ev))
        if handler:
            handler(ev)

    def print(self, text: str) -> None:
        (self.progress or self.waiting or self).console.print(text, highlight=False)

    def _fields(self) -> str:
        return events.summary_text(self.values, self.metrics) or "-"

    # -- one handler per event ----------------------------------------------------------------------
    def _data_problem(self, ev: events.DataProblem) -> None:
        self.problems += 1
        if self.problems <= MAX_PROBLEMS_SHOWN:
            self.print(f"[yellow]skipped[/] {_safe(ev.message)}")
        elif self.problems == MAX_PROBLEMS_SHOWN + 1:
            self.print("[yellow]... more problems: run `localtune data check FILE`[/]")

    def _data(self, ev: events.Data) -> None:
        extra = "".join(f", {getattr(ev, k)} {k}" for k in ("problems", "truncated", "dropped") if getattr(ev, k))
        self.print(f"{ev.file}: {_safe(ev.path)} ({ev.format}): {ev.usable} rows, {ev.tokens} tokens{extra}")

    def _message(self, ev) -> None:
        if ev.message:  # per-file progress events carry no message: too chatty for a log
            self.print(f"{ev.name}: {_safe(ev.message)}")

    def _model(self, ev: events.Model) -> None:
        self.print(f"model: {ev.path}")

    def _resumed(self, ev: events.Resumed) -> None:
        self.print(f"resumed at step {ev.step} from {ev.checkpoint}")

    def _notice(self, ev: events.Notice) -> None:
        self.print(f"[yellow]note:[/] {_safe(ev.message)}")

    def _warn(self, ev: events.Warn) -> None:
        self.print(f"[yellow]warning:[/] {_safe(ev.message)}")

    def _said(self, ev) -> None:
        """Events that word themselves (early stop, the best checkpoint)."""
        self.print(ev.text())

    def _unusable(self, ev: events.UnusableCheckpoint) -> None:
        self.print(f"[yellow]checkpoint {ev.path} is unusable ({ev.reason}); trying an older one[/]")

    def _reference(self, ev: events.Reference) -> None:
        self.print(f"reference log-probs ({ev.file}, {ev.pairs} pairs): {ev.status} in {ev.seconds:.1f}s")

    def _phase(self, ev: events.Phase) -> None:
        changed = self.phase is None or self.phase.phase != ev.phase
        self.phase = ev
        if self.progress is not None:
            self.progress.update(self.task, phase=ev.text())
        elif self.live:
            if self.waiting is None:
                self.waiting = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                        console=self.console, transient=True)
                self.waiting.start()
                self.wait_task = self.waiting.add_task(ev.text())
            self.waiting.update(self.wait_task, description=ev.text())
        # A log gets the stages before training (and a stop); during training the step and val
        # lines already say what happens.
        if not self.live and (not self.started or ev.phase == "stopping") and (
                changed or (ev.total and ev.done == ev.total)):
            self.print(f"{time.strftime('%H:%M:%S')} {ev.text()}")

    def _start(self, ev: events.Start) -> None:
        self.values = {"val_loss": self.values["val_loss"]} if ev.step and "val_loss" in self.values else {}
        self.metrics = events.metric_set(ev.metrics or ())
        self.started = True
        if self.waiting:
            self.waiting.stop()
            self.waiting = None
        self.print(f"run: {ev.run}  ({ev.trainable_params:,} trainable of "
                   f"{ev.total_params:,} parameters, {ev.iters} steps)")
        if self.live:
            self.progress = Progress(
                TextColumn("[bold]{task.fields[phase]}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=ev.iters, completed=ev.step, info=self._fields(),
                                               phase="train")

    def _train(self, ev: events.Train) -> None:
        self.values.update(ev.values())
        if ev.train_loss is None:
            self.values["train_loss"] = float("nan")
        self._update(ev.step)

    def _val(self, ev: events.Val) -> None:
        self.values.update(ev.values())
        self._update(ev.step)
        if self.progress is not None:
            shown = "  ".join(self.metrics[k].text(v) for k, v in ev.values().items() if k in self.metrics)
            self.progress.console.print(f"step {ev.step}: {shown}", highlight=False)

    def _checkpoint(self, ev: events.Checkpoint) -> None:
        if not self.live:
            self.print(f"checkpoint {ev.path}")

    def _done(self, ev: events.Done) -> None:
        self.close()
        self.started = False  # the demo runs SFT, then DPO, through one display

    def _stopped(self, ev: events.Stopped) -> None:
        self.close()
        self.print(f"[yellow]stopped at step {ev.step}; checkpoint saved[/]")

    def _skipped(self, ev: events.Skipped) -> None:
        self.print(f"[yellow]step {ev.step}: skipped batch ({ev.reason})[/]")

    def _update(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step, info=self._fields())
        else:
            self.print(f"{time.strftime('%H:%M:%S')} step {step}: {self._fields()}")
            sys.stdout.flush()
