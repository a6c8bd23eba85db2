"""The Train screen's followed run: title, what it is doing (phase, counts, elapsed, ETA), an
overall progress bar, the latest numbers, curves and the log tail. (The form: train_form.py.)"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Log, ProgressBar, Static

from localtune.runs import INTERRUPTED, latest_good_checkpoint
from tui.follow import LOSS_SERIES, WORKING, RunFollower
from tui.render import relative
from tui.widgets.curve_plot import CurvePlot

BAR_TOTAL = 1000  # the bar shows the run's done fraction (time-weighted), not raw steps


def last_checkpoint(run_dir: Path) -> str | None:
    """The newest checkpoint a resume would start from."""
    found = latest_good_checkpoint(run_dir)
    return found.name if found else None


class RunView(Vertical):
    is_dpo = False  # the run has a reward plot
    on_answers = False  # GRPO, online DPO: the reward plot is the one that matters
    def compose(self) -> ComposeResult:
        yield Label("no run attached: start one, or pick one in Runs (F2)", id="run-title")
        yield Static("", id="run-activity", markup=False)
        yield ProgressBar(total=BAR_TOTAL, show_eta=False, id="run-progress")
        yield Static("", id="run-summary", markup=False)
        yield Static("", id="run-error", classes="error", markup=False)
        with Horizontal(id="run-plots"):
            yield CurvePlot("loss", id="loss-plot")
            yield CurvePlot("DPO reward accuracy / margin", "value", id="dpo-plot")
            yield CurvePlot("answers (--eval-file)", "share", id="answers-plot")
        yield Log(id="run-log", max_lines=300)

    def on_mount(self) -> None:
        self.query_one("#dpo-plot").display = False
        self.query_one("#answers-plot").display = False
        self.query_one("#run-error").display = False
        self.query_one("#run-progress").display = False

    def on_resize(self) -> None:
        self._place_dpo_plot()

    def _place_dpo_plot(self) -> None:
        # 80x24: two plots side by side are three rows high, so one plot: the loss (the summary
        # line has the DPO numbers), or the reward of a run trained on its own answers (GRPO)
        cramped = self.screen.has_class("-narrow") and self.screen.has_class("-short")
        reward_only = cramped and self.is_dpo and self.on_answers
        self.query_one("#dpo-plot").display = self.is_dpo and (not cramped or reward_only)
        self.query_one("#loss-plot").display = not reward_only

    def clear(self) -> None:
        self.query_one("#run-log", Log).clear()
        self.query_one("#loss-plot", CurvePlot).set_series({})
        self.query_one("#dpo-plot", CurvePlot).set_series({})
        self.query_one("#answers-plot", CurvePlot).set_series({})

    def show_activity(self, f: RunFollower) -> None:
        """The lines that change with the clock (elapsed, ETA): refreshed on every poll."""
        status = f.status
        kind = str(f.info.get("kind", "?")).upper()
        self.query_one("#run-title", Label).update(f"{relative(f.path)} · {kind} · {status}")
        activity = f.activity()
        self.query_one("#run-activity", Static).update(activity)
        bar = self.query_one("#run-progress", ProgressBar)
        bar.display = bool(f.iters) and status in WORKING
        bar.update(progress=round(f.fraction() * BAR_TOTAL))
        waiting = "no points yet" if status not in WORKING else \
            f"no points yet ({activity.split(' · ')[0]})"
        for plot in self.query(CurvePlot):
            plot.set_empty_note(waiting)

    def show(self, f: RunFollower, extra_error: str = "") -> None:
        self.show_activity(f)
        status = f.status
        error = f.info.get("error") or extra_error
        err = self.query_one("#run-error", Static)
        if error and status in ("failed", INTERRUPTED):
            ckpt = last_checkpoint(f.path)
            kept = f"\nlast checkpoint kept: {ckpt}" if ckpt else ""
            err.update(f"error: {error}{kept}")
            err.display = True
        else:
            err.display = False
        self.query_one("#run-summary", Static).update(f.summary())
        self.query_one("#loss-plot", CurvePlot).set_series(
            {n: f.series[n] for n in LOSS_SERIES if n in f.series})
        dpo = self.query_one("#dpo-plot", CurvePlot)
        self.is_dpo, self.on_answers = f.is_dpo, f.on_answers
        self._place_dpo_plot()
        title = "DPO reward accuracy / margin" if f.record.kind == "dpo" else "reward"
        if title != dpo.title:
            dpo.title = title
            dpo.replot()
        dpo.set_series({n: f.series[n] for n in f.reward_series if n in f.series})
        answers = self.query_one("#answers-plot", CurvePlot)  # eval during training, when the run has it
        answers.set_series(f.plot_series("answers"))
        answers.display = bool(answers.series)
        if f.new_log:
            self.query_one("#run-log", Log).write_lines(f.new_log)
