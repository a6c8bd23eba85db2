"""Train: the form, start/stop/resume a trainer process, follow its run directory live, and
predict the form's run (`localtune plan`) in a thread worker before starting it."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Header, Static
from textual.worker import Worker, get_current_worker

from localtune.runs import default_run_name
from tui import process
from tui.base import BaseScreen
from tui.follow import DONE, RunFollower
from tui.messages import PlanDone
from tui.render import plan_text, relative
from tui.widgets.train_panels import RunView, TrainForm

POLL_SECONDS = 0.3


class TrainScreen(BaseScreen):
    BINDINGS = [
        Binding("ctrl+s", "start", "Start", priority=True),
        Binding("ctrl+t", "stop", "Stop", priority=True),
        Binding("ctrl+r", "resume", "Resume", priority=True),
        # Footer labels kept short so all of them (F-keys included) fit a 120-column terminal.
        Binding("ctrl+o", "load_yaml", "Load", priority=True),
        Binding("ctrl+y", "save_yaml", "Save", priority=True),
        Binding("ctrl+p", "plan", "Plan", priority=True),  # free: the app has no command palette
    ]

    def __init__(self) -> None:
        super().__init__()
        self.follower: RunFollower | None = None
        self.proc = None  # the Popen we started, reaped so a finished trainer is no zombie

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="train-left"):
                yield TrainForm(id="train-form")
                with Horizontal(classes="buttons"):
                    yield Button("Start", id="start", variant="success")
                    yield Button("Stop", id="stop", variant="error")
                    yield Button("Resume", id="resume")
                with Horizontal(classes="buttons"):
                    yield Button("Load YAML", id="load-yaml")
                    yield Button("Save YAML", id="save-yaml")
                    yield Button("Plan", id="plan-button")
                yield Static("", id="plan")
                yield Static("", id="error", classes="error")
            yield RunView(id="run-view")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.query_one("#plan").display = False
        settings = self.app.settings
        if settings.get("model"):
            self.query_one(TrainForm).set_value("model", settings["model"])
        self.set_interval(POLL_SECONDS, self.poll_run)

    def on_screen_resume(self) -> None:
        path = self.app.settings.pop("attach", None)
        if path:
            self.attach(path)
            if self.app.settings.pop("resume", False):
                self.action_resume()

    # -- following -------------------------------------------------------------------------
    def attach(self, run_dir: str | Path) -> None:
        self.follower = RunFollower(run_dir)
        self.query_one(RunView).clear()
        self.poll_run()

    def poll_run(self) -> None:
        f = self.follower
        if f is None:
            return
        exited = self.proc is not None and self.proc.poll() is not None
        changed = f.poll()
        extra = ""
        if exited and f.status not in DONE:
            # The trainer died without writing a final status (or before writing its record).
            extra = process.console_tail(f.path) or f"trainer exited with code {self.proc.returncode}"
            f.info = {**f.info, "status": "failed", "error": f.info.get("error") or extra}
            changed = True
        if exited:
            self.proc = None
        if changed:
            self.query_one(RunView).show(f, extra)

    @property
    def run_status(self) -> str | None:
        return self.follower.status if self.follower else None

    # -- actions ---------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"start": self.action_start, "stop": self.action_stop, "resume": self.action_resume,
                   "load-yaml": self.action_load_yaml, "save-yaml": self.action_save_yaml,
                   "plan-button": self.action_plan}
        if event.button.id in actions:
            actions[event.button.id]()

    def _guard(self, fn) -> None:
        self.clear_error()
        try:
            fn()
        except Exception as e:  # shown, never raised: the UI keeps running
            self.show_error(str(e))

    def action_start(self) -> None:
        self._guard(self._start)

    def _start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("a run started here is still going; stop it first")
        form, values = self._form_values()
        name = form.run_name or default_run_name(form.kind)
        run_dir = Path(self.app.settings["runs_root"]) / name
        self.proc = process.start_training(form.kind, values, run_dir, cwd=self.app.settings.get("cwd"))
        self.attach(run_dir)
        self.notify(f"started {relative(run_dir)}")

    def _form_values(self) -> tuple[TrainForm, dict]:
        form = self.query_one(TrainForm)
        values = form.all_values()
        if not values.get("data"):
            raise ValueError("give the training data file")
        return form, values

    # -- plan ------------------------------------------------------------------------------
    def action_plan(self) -> None:
        self._guard(self._plan)

    def _plan(self) -> None:
        self._show_plan("")  # a failed attempt must not leave an older prediction looking current
        if self.query_one(TrainForm).kind != "sft":
            raise ValueError("plan predicts SFT runs only; DPO memory and speed are not modelled yet")
        _, values = self._form_values()
        cfg = process.train_config(values)
        self._show_plan("plan: tokenizing the data and measuring the matmul rate ...")
        self.run_plan(cfg)

    @work(thread=True, exclusive=True, exit_on_error=False, group="plan")
    def run_plan(self, cfg) -> None:
        from localtune.plan import plan

        result = plan(cfg)
        if not get_current_worker().is_cancelled:  # a newer plan replaced this one
            self.post_message(PlanDone(result, cfg.batch_size))

    def on_plan_done(self, msg: PlanDone) -> None:
        self._show_plan(plan_text(msg.result, msg.batch_size))

    def worker_failed(self, worker: Worker) -> None:
        if worker.group == "plan":  # the error is in #error; drop the "planning ..." line
            self._show_plan("")

    def _show_plan(self, text: str) -> None:
        line = self.query_one("#plan", Static)
        line.update(text)
        line.display = bool(text)

    def action_stop(self) -> None:
        def stop():
            if self.follower is None:
                raise RuntimeError("no run attached")
            pid = process.stop_run(self.follower.path)
            self.notify(f"asked trainer {pid} to checkpoint and stop")
        self._guard(stop)

    def action_resume(self) -> None:
        def resume():
            if self.follower is None:
                raise RuntimeError("no run attached: pick one in Runs (F2)")
            if self.follower.status not in ("stopped", "failed", "interrupted"):
                raise RuntimeError(f"run is {self.follower.status}; only a stopped or failed run resumes")
            self.proc = process.resume_training(self.follower.path, cwd=self.app.settings.get("cwd"))
            self.attach(self.follower.path)
        self._guard(resume)

    def action_load_yaml(self) -> None:
        def load():
            from localtune.config import read_yaml
            form = self.query_one(TrainForm)
            form.fill(read_yaml(form.yaml_path or "config.yaml"))
            self.notify(f"loaded {form.yaml_path}")
        self._guard(load)

    def action_save_yaml(self) -> None:
        def save():
            form = self.query_one(TrainForm)
            if not form.yaml_path:
                raise ValueError("type a YAML file name first")
            process.write_config(form.yaml_path, form.all_values())
            self.notify(f"saved {form.yaml_path}")
        self._guard(save)
