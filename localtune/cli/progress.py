"""Show training events: a rich progress bar on a terminal, plain lines otherwise (logs, TUI)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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
        self.progress: Progress | None = None
        self.task = None
        self.problems = 0
        self.last = {"loss": "-", "val": "-", "tps": "-"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.progress:
            self.progress.stop()
            self.progress = None

    def _fields(self) -> str:
        pref = f"  acc {self.last['acc']}  margin {self.last['margin']}" if "acc" in self.last else ""
        return f"loss {self.last['loss']}  val {self.last['val']}{pref}  {self.last['tps']} tok/s"

    def __call__(self, e: dict) -> None:
        kind = e.get("event")
        if kind == "data_problem":
            self.problems += 1
            if self.problems <= MAX_PROBLEMS_SHOWN:
                self.console.print(f"[yellow]skipped[/] {_safe(e['message'])}", highlight=False)
            elif self.problems == MAX_PROBLEMS_SHOWN + 1:
                self.console.print("[yellow]... more problems: run `localtune data check FILE`[/]")
        elif kind == "data":
            extra = "".join(f", {e[k]} {k}" for k in ("problems", "truncated", "dropped") if e.get(k))
            self.console.print(f"{e['file']}: {_safe(e['path'])} ({e['format']}): {e['usable']} rows, "
                               f"{e['tokens']} tokens{extra}", highlight=False)
        elif kind in ("download", "import"):
            if e.get("message"):  # per-file progress events carry no message: too chatty for a log
                self.console.print(f"{kind}: {e['message']}", highlight=False)
        elif kind == "model":
            self.console.print(f"model: {e['path']}", highlight=False)
        elif kind == "resumed":
            self.console.print(f"resumed at step {e['step']} from {e['checkpoint']}", highlight=False)
        elif kind == "start":
            self.last = {"loss": "-", "val": self.last["val"] if e["step"] else "-", "tps": "-"}  # a new run
            self.console.print(f"run: {e['run']}  ({e['trainable_params']:,} trainable of "
                               f"{e['total_params']:,} parameters, {e['iters']} steps)", highlight=False)
            if self.live:
                self.progress = Progress(
                    TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=self.console,
                )
                self.progress.start()
                self.task = self.progress.add_task("train", total=e["iters"], completed=e["step"],
                                                   info=self._fields())
        elif kind == "train":
            loss = e.get("train_loss")
            self.last["loss"] = f"{loss:.3f}" if loss is not None else "nan"
            self.last["tps"] = f"{e['tokens_per_sec']:.0f}"
            if "reward_accuracy" in e:  # preference runs (DPO): per-pair accuracy and margin
                self.last["acc"] = f"{e['reward_accuracy']:.2f}"
                self.last["margin"] = f"{e['reward_margin']:.2f}"
            self._update(e["step"], e)
        elif kind == "val":
            self.last["val"] = f"{e['val_loss']:.3f}"
            self._update(e["step"], e, line=True)
        elif kind == "reference":
            self.console.print(f"reference log-probs ({e['file']}, {e['pairs']} pairs): {e['status']} "
                               f"in {e['seconds']:.1f}s", highlight=False)
        elif kind == "checkpoint":
            if not self.live:
                self.console.print(f"checkpoint {e['path']}", highlight=False)
        elif kind == "done":
            self.close()
        elif kind == "stopped":
            self.close()
            self.console.print(f"[yellow]stopped at step {e['step']}; checkpoint saved[/]")
        elif kind == "warning":
            self.console.print(f"[yellow]warning:[/] {_safe(e['message'])}", highlight=False)
        elif kind == "skipped":
            self.console.print(f"[yellow]step {e['step']}: skipped batch ({e['reason']})[/]")

    def _update(self, step: int, e: dict, line: bool = False) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step, info=self._fields())
            if line:
                acc = (f", reward accuracy {e['val_reward_accuracy']:.2f}, margin {e['val_reward_margin']:.2f}"
                       if "val_reward_accuracy" in e else "")
                self.progress.console.print(f"step {step}: val loss {e['val_loss']:.3f}{acc}", highlight=False)
        else:
            self.console.print(f"{time.strftime('%H:%M:%S')} step {step}: {self._fields()}",
                               highlight=False)
            sys.stdout.flush()
