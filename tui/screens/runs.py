"""Runs: every run with status, kind, data, final losses and duration; curves, config, compare
two runs on one plot, watch (re-attach), resume, delete and export (peft | fused | gguf, optional
hub push) in a thread worker."""

from __future__ import annotations

import time

import yaml
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Footer, Header, Static

from localtune.errors import LocaltuneError
from localtune.runs import LIVE, delete_run
from tui.base import BaseScreen
from tui.dialogs import ConfirmDialog
from tui.follow import LOSS_SERIES, load_run
from tui.messages import ExportDone
from tui.render import relative
from tui.widgets.curve_plot import CurvePlot
from tui.widgets.export_dialog import ExportDialog

COLUMNS = (("run", 16), ("status", 11), ("kind", 4), ("data", 16), ("train", 7), ("valid", 7), ("time", 7))


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
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


class RunsScreen(BaseScreen):
    BINDINGS = [
        Binding("w", "watch", "Watch"),
        Binding("m", "mark", "Compare"),
        Binding("ctrl+r", "resume", "Resume"),
        Binding("d", "delete", "Delete"),
        Binding("e", "export", "Export"),
        Binding("f", "rate", "Rate answers"),
        Binding("g", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[dict] = []
        self.selected: dict | None = None
        self.compare: dict | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="runs-left"):
                yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
                with Horizontal(classes="buttons"):
                    yield Button("Watch", id="watch", variant="primary")
                    yield Button("Compare", id="mark")
                    yield Button("Resume", id="resume")
                    yield Button("Delete", id="delete", variant="error")
                    yield Button("Export", id="export", disabled=True)
                yield Static("", id="error", classes="error")
                yield Static("", id="runs-status", markup=False)
            with Vertical(id="runs-right"):
                yield CurvePlot("loss", id="runs-plot")
                with VerticalScroll(id="runs-config-box"):
                    yield Static("select a run", id="runs-config")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.query_one("#runs-status").display = False
        table = self.query_one(DataTable)
        for label, width in COLUMNS:
            table.add_column(label, width=width)

    def on_screen_resume(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        from localtune.runs import list_runs

        table = self.query_one(DataTable)
        self.runs = list_runs(self.app.settings["runs_root"])
        table.clear()
        for r in self.runs:
            data = r.get("config", {}).get("data")
            table.add_row(r["name"], r.get("status", "?"), r.get("kind", "?"), relative(data) if data else "-",
                          _loss(r.get("final_train_loss")), _loss(r.get("final_val_loss")), duration(r),
                          key=r["path"])
        self.query_one("#export", Button).disabled = not self.runs
        if self.runs:
            self.select(self.runs[min(table.cursor_row, len(self.runs) - 1)])
        else:
            self.selected = None
            self.query_one("#runs-config", Static).update(
                f"no runs under {self.app.settings['runs_root']}: start one on the Train screen (F1)")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        run = next((r for r in self.runs if r["path"] == key), None)
        if run is not None and run is not self.selected:
            self.select(run)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_watch()

    def select(self, run: dict) -> None:
        self.selected = run
        self.query_one("#export", Button).disabled = False
        series = {}
        for r, prefix in ((run, ""), (self.compare, "B ")):
            if r is None or (prefix and r["path"] == run["path"]):
                continue
            follower = load_run(r["path"])
            tag = f"{r['name']} " if self.compare else ""
            series.update({f"{tag}{n}": follower.series[n] for n in LOSS_SERIES if n in follower.series})
        self.query_one("#runs-plot", CurvePlot).set_series(series)
        shown = {k: run.get(k) for k in ("name", "status", "kind", "iters", "step", "error") if run.get(k)}
        text = yaml.safe_dump({**shown, "config": run.get("config", {})}, sort_keys=False)
        if self.compare:
            text = f"comparing with {self.compare['name']} (m on it again to stop)\n\n" + text
        self.query_one("#runs-config", Static).update(text)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        getattr(self, f"action_{event.button.id}")()

    def _need_run(self) -> dict | None:
        if self.selected is None:
            self.show_error("no run selected")
        return self.selected

    def action_watch(self) -> None:
        if self._need_run():
            self.app.watch_run(self.selected["path"])

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
                self.selected = self.compare = None
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
        self.query_one("#export", Button).disabled = self.selected is None
        text = f"exported ({msg.fmt}): {relative(msg.path)}"
        if msg.url:
            text += f"\npushed: {msg.url}"
        self._show_status(text)
        if msg.push_error:
            self.show_error(f"exported to {relative(msg.path)}, but the push failed: {msg.push_error}")
        else:
            self.notify(text, title="export done", timeout=8)

    def worker_failed(self, worker) -> None:
        if worker.group == "export":
            self.query_one("#export", Button).disabled = self.selected is None
            self.query_one("#runs-status").display = False

    def _show_status(self, text: str) -> None:
        status = self.query_one("#runs-status", Static)
        status.update(text)
        status.display = True
