"""Runs: every run with status, kind, data, final losses and duration; curves and config; and what
to do next with a run in one key: watch, chat with it, DPO from it, evaluate it, its evaluations
with answers side by side, clone its config, compare, resume, delete, export (peft | fused | gguf,
optional hub push). The list refreshes itself and keeps the selected run selected."""

from __future__ import annotations

import time

import yaml
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Footer, Static
from textual.worker import get_current_worker

from localtune.errors import LocaltuneError
from localtune.runs import LIVE, RESUMABLE, delete_run
from localtune.runs import has_adapter as holds_adapter
from tui import jobs
from tui.base import BaseScreen
from tui.dialogs import ConfirmDialog
from tui.follow import LOSS_SERIES, load_run
from tui.messages import ExportDone, JobDone
from tui.render import relative
from tui.widgets.curve_plot import CurvePlot
from tui.widgets.export_dialog import ExportDialog
from tui.widgets.nav_bar import NavBar

COLUMNS = (("run", 19), ("status", 10), ("kind", 6), ("train", 6), ("valid", 6), ("time", 6), ("data", 8))  # kind: "reward"
REFRESH_SECONDS = 2.0
# button id -> action; the buttons show the same actions as the keys, for the mouse
BUTTONS = (("watch", "Watch"), ("chat", "Chat"), ("dpo", "DPO"), ("evaluate", "Eval"), ("clone", "Clone"),
           ("mark", "Compare"), ("resume", "Resume"), ("delete", "Delete"), ("export", "Export"))


def duration(run: dict) -> str:
    start = run.get("started")
    if not start:
        return "-"
    end = run.get("finished") or (time.time() if run.get("status") == "running" else None)
    if not end:
        return "-"
    s = int(end - start)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _loss(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def has_adapter(run: dict) -> bool:
    return holds_adapter(run["path"])


class RunsScreen(BaseScreen):
    # The table needs ~80 columns: side by side with the plot only from 130.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (130, "-wide")]
    BINDINGS = [
        # Enter watches too (the row's natural action): w stays out of the footer, which must fit 80 columns.
        Binding("w", "watch", "Watch", show=False, tooltip="watch it on the Train screen (live while it trains)"),
        Binding("c", "chat", "Chat", tooltip="chat with this run's adapter (Chat screen, loaded at once)"),
        Binding("p", "dpo", "DPO", tooltip="DPO from this run: the Train form set to DPO, starting from its adapter"),
        Binding("v", "evaluate", "Eval", tooltip="evaluate this run (localtune eval --adapter RUN); shows the result"),
        Binding("a", "evals", "Answers", tooltip="this run's evaluations: numbers, and its answers beside the "
                                                 "compared run's (or the base's)"),
        Binding("f", "rate", "Rate", tooltip="sample this run's answers (its validation prompts) and rate them "
                                             "(Rate screen)"),
        Binding("n", "clone", "Clone", tooltip="clone: the Train form filled with this run's config"),
        Binding("m", "mark", "Compare", tooltip="compare: overlay its curves with the next run you select (m again: off)"),
        Binding("ctrl+r", "resume", "Resume", tooltip="resume a stopped or failed run from its last checkpoint"),
        # Delete has its own (red) button and asks y/n; out of the footer for the 80 columns
        Binding("d", "delete", "Delete", show=False, tooltip="delete the run and its checkpoints (asks y/n)"),
        Binding("e", "export", "Export", tooltip="export: peft, fused or gguf, optionally pushed to the hub"),
        Binding("g", "refresh", "Refresh now", show=False),
    ]
    HELP = ("enter on a run: watch it (live if it trains) on the Train screen.",
            "Keys act on the selected run and show only when they apply (chat/DPO/eval/export need "
            "a saved adapter; resume a stopped or failed run).",
            f"The list refreshes itself every {REFRESH_SECONDS:.0f} s and keeps your selection.")

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[dict] = []
        self.selected: dict | None = None
        self.compare: dict | None = None
        self._rows_signature: tuple = ()
        self.job_running = False

    def compose(self) -> ComposeResult:
        yield NavBar()
        with Horizontal(id="runs-body", classes="body"):
            with Vertical(id="runs-left", classes="pane-a"):
                yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
                with Horizontal(classes="buttons", id="runs-buttons"):
                    for bid, label in BUTTONS:
                        yield Button(label, id=bid, compact=True, variant="error" if bid == "delete" else "default")
                yield Static("", id="error", classes="error")
                yield Static("", id="runs-status", markup=False)
            with Vertical(id="runs-right", classes="pane-b"):
                with Horizontal(id="runs-plots"):
                    yield CurvePlot("loss", id="runs-plot")
                    yield CurvePlot("reward", "value", id="runs-reward-plot")
                with VerticalScroll(id="runs-config-box"):
                    yield Static("select a run", id="runs-config", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.query_one("#runs-status").display = False
        self.query_one("#runs-reward-plot").display = False
        table = self.query_one(DataTable)
        for label, width in COLUMNS:
            table.add_column(label, width=width)
        self.set_interval(REFRESH_SECONDS, self._refresh_tick)

    def on_screen_resume(self) -> None:
        self.action_refresh()

    def _refresh_tick(self) -> None:
        if self.is_current:
            self.action_refresh()

    # -- the list --------------------------------------------------------------------------
    def action_refresh(self) -> None:
        from localtune.runs import list_runs

        runs = list_runs(self.app.settings["runs_root"])
        signature = tuple((r["path"], r.get("status"), r.get("step"), r.get("final_train_loss"),
                           r.get("final_val_loss"), r.get("finished"), has_adapter(r), duration(r)) for r in runs)
        if signature == self._rows_signature:
            if self.selected and self.selected.get("status") in LIVE:
                self.select(self.selected)  # its curves grow
            return
        self._rows_signature = signature
        table = self.query_one(DataTable)
        keep = self.selected["path"] if self.selected else None
        old_row = table.cursor_row
        self.runs = runs
        table.clear()
        for r in runs:
            data = r.get("config", {}).get("data")
            table.add_row(r["name"], r.get("status", "?"), r.get("kind", "?"), _loss(r.get("final_train_loss")),
                          _loss(r.get("final_val_loss")), duration(r), relative(data) if data else "-",
                          key=r["path"])
        if not runs:
            self.selected = None
            self.query_one("#runs-plot", CurvePlot).set_series({})
            self.query_one("#runs-config", Static).update(
                f"no runs under {self.app.settings['runs_root']}: start one on the Train screen (F1)")
            self.refresh_bindings()
            return
        paths = [r["path"] for r in runs]
        # the same run stays selected; if it is gone (deleted), the one now in its place
        row = paths.index(keep) if keep in paths else min(max(old_row, 0), len(runs) - 1)
        table.move_cursor(row=row, animate=False)
        self.select(runs[row])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Where the cursor is now, not where the event says: a rebuild posts highlights of rows
        # the cursor has already left (clear() goes to the top before the selection is restored).
        row = self.query_one(DataTable).cursor_row
        if 0 <= row < len(self.runs):
            run = self.runs[row]
            if self.selected is None or run["path"] != self.selected["path"]:
                self.select(run)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_watch()

    def select(self, run: dict) -> None:
        self.selected = run
        series, rewards = {}, {}
        for r, prefix in ((run, ""), (self.compare, "B ")):
            if r is None or (prefix and r["path"] == run["path"]):
                continue
            follower = load_run(r["path"])
            tag = f"{r['name']} " if self.compare else ""
            series.update({f"{tag}{n}": follower.series[n] for n in LOSS_SERIES if n in follower.series})
            # DPO's accuracy and margin, a reward model's, GRPO's reward per source (its declared metrics)
            rewards.update({f"{tag}{n}": follower.series[n] for n in follower.reward_series if n in follower.series})
        self.query_one("#runs-plot", CurvePlot).set_series(series)
        reward_plot = self.query_one("#runs-reward-plot", CurvePlot)
        reward_plot.set_series(rewards)
        reward_plot.display = bool(reward_plot.series)
        shown = {k: run.get(k) for k in ("name", "status", "kind", "iters", "step", "error") if run.get(k)}
        text = yaml.safe_dump({**shown, "config": run.get("config", {})}, sort_keys=False)
        if self.compare:
            text = f"comparing with {self.compare['name']} (m on it again to stop)\n\n" + text
        self.query_one("#runs-config", Static).update(text)
        self._update_buttons()

    def _update_buttons(self) -> None:
        for bid, _ in BUTTONS:
            self.query_one(f"#{bid}", Button).disabled = not self.check_action(bid, ())
        self.refresh_bindings()

    def check_action(self, action: str, parameters) -> bool | None:
        """Keys (and buttons) only for what the selected run allows."""
        run = self.selected
        if action in ("refresh",) or action not in {b for b, _ in BUTTONS}:
            return True
        if run is None:
            return False
        status = run.get("status")
        if action in ("chat", "dpo", "evaluate", "export"):
            ok = has_adapter(run) and status not in LIVE
            return ok and not (action == "evaluate" and self.job_running)
        if action == "resume":
            return status in RESUMABLE
        if action == "delete":
            return status not in LIVE
        return True

    # -- actions ---------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        getattr(self, f"action_{event.button.id}")()

    def _need_run(self) -> dict | None:
        if self.selected is None:
            self.show_error("no run selected")
        return self.selected

    def action_watch(self) -> None:
        if self._need_run():
            self.app.watch_run(self.selected["path"])

    def action_chat(self) -> None:
        if self._need_run():
            self.app.chat_with(self.selected["path"])

    def action_dpo(self) -> None:
        run = self._need_run()
        if not run:
            return
        values = {"adapter": relative(run["path"])}
        model = run.get("config", {}).get("model")
        if model:
            values["model"] = model
        self.app.fill_train_form("dpo", values, focus="data",
                                 note=f"DPO from {run['name']}: pick preference data (train data) and start (ctrl+s)")

    def action_clone(self) -> None:
        run = self._need_run()
        if not run:
            return
        self.app.fill_train_form(run.get("kind", "sft"), dict(run.get("config", {})), focus="name",
                                 note=f"the config of {run['name']}: change what you like and start (ctrl+s)")

    def action_evaluate(self) -> None:
        run = self._need_run()
        if not run or self.job_running:
            return
        args = jobs.eval_command(run["path"], self.app.settings.get("eval_command"))
        self.job_running = True
        self._update_buttons()
        self._show_status(f"evaluating {run['name']} ... ({' '.join(args[-3:])}); the result opens when done")
        self.run_job(f"evaluate {run['name']}", args)

    @work(thread=True, exclusive=True, exit_on_error=False, group="job")
    def run_job(self, title: str, args: list[str]) -> None:
        worker = get_current_worker()
        (code, output), seconds = jobs.timed(jobs.run_command, args, self.app.settings.get("cwd"),
                                             lambda: worker.is_cancelled)
        self.post_message(JobDone(title, code, output, seconds))

    def on_job_done(self, msg: JobDone) -> None:
        self.job_running = False
        self._update_buttons()
        self._show_status(f"{msg.title}: {'done' if msg.code == 0 else f'failed (exit code {msg.code})'}")
        self.app.push_screen(jobs.OutputDialog(msg.title, msg.code, msg.output, msg.seconds))

    def action_rate(self) -> None:
        if self._need_run():  # sample this run's answers, then rate them (Rate screen)
            self.app.rate_run(self.selected["path"])

    def action_mark(self) -> None:
        if not self._need_run():
            return
        same = self.compare is not None and self.compare["path"] == self.selected["path"]
        self.compare = None if same else self.selected
        self.notify("comparison off" if same else f"compare against {self.selected['name']}: select another run")
        self.select(self.selected)

    def action_evals(self) -> None:
        """The selected run's evaluations, its answers beside the compared run's (or the base's)."""
        if self._need_run():
            from tui.screens.run_evals import RunEvalsScreen

            self.app.push_screen(RunEvalsScreen(self.selected["path"], (self.compare or {}).get("path")))

    def action_resume(self) -> None:
        if self._need_run():
            self.app.watch_run(self.selected["path"], resume=True)

    def action_delete(self) -> None:
        run = self._need_run()
        if not run:
            return
        if run.get("status") in LIVE:
            self.show_error(f"{run['name']} is running; stop it first")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                try:
                    delete_run(run["path"])  # refuses a directory that is not a run, or a live one
                except LocaltuneError as e:
                    self.show_error(str(e))
                    return
                self.notify(f"deleted {run['name']}")
                if self.compare is not None and self.compare["path"] == run["path"]:
                    self.compare = None
                self.action_refresh()

        self.app.push_screen(ConfirmDialog(f"Delete run {run['name']} and its checkpoints?"), answer)

    def action_export(self) -> None:
        run = self._need_run()
        if not run:
            return
        if run.get("status") in LIVE:
            self.show_error(f"{run['name']} is still training; export it when it has finished")
            return

        def answer(choice: dict | None) -> None:
            if choice:
                self.clear_error()
                self.query_one("#export", Button).disabled = True
                self._show_status(f"exporting {run['name']} ({choice['fmt']}) ...")
                self.export(run["path"], choice["fmt"], choice["out"], choice["push"])

        self.app.push_screen(ExportDialog(run), answer)

    @work(thread=True, exclusive=True, exit_on_error=False, group="export")
    def export(self, run: str, fmt: str, out: str, push: str | None) -> None:
        from localtune.errors import LocaltuneError
        from localtune.export import export_run

        path = export_run(run, fmt, out)
        url = push_error = None
        if push:
            from localtune.export.hub import push_export

            try:
                url = push_export(run, path, push, fmt=fmt)
            except Exception as e:  # the export is written: keep it, show why the upload failed
                push_error = str(e) if isinstance(e, LocaltuneError) else \
                    f"cannot upload to {push} ({type(e).__name__}: {e}); offline?"
        self.post_message(ExportDone(fmt, str(path), url, push_error))

    def on_export_done(self, msg: ExportDone) -> None:
        self._update_buttons()
        text = f"exported ({msg.fmt}): {relative(msg.path)}"
        if msg.url:
            text += f"\npushed: {msg.url}"
        self._show_status(text)
        self.action_refresh()  # an export inside the run changes nothing listed, but keeps the selection
        if msg.push_error:
            self.show_error(f"exported to {relative(msg.path)}, but the push failed: {msg.push_error}")
        else:
            self.notify(text, title="export done", timeout=8)

    def worker_failed(self, worker) -> None:
        if worker.group == "export":
            self._update_buttons()
            self.query_one("#runs-status").display = False
        elif worker.group == "job":
            self.job_running = False
            self._update_buttons()

    def _show_status(self, text: str) -> None:
        status = self.query_one("#runs-status", Static)
        status.update(text)
        status.display = True
