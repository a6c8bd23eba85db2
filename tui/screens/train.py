"""Train: the form, start/stop/resume a trainer process, follow its run directory live, and
predict the form's run (`localtune plan`) in a thread worker before starting it."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Static
from textual.worker import Worker, get_current_worker

from localtune.runs import ENDED, LIVE, RESUMABLE, default_run_name
from tui import process
from tui.base import BaseScreen
from tui.follow import RunFollower
from tui.messages import PlanDone
from tui.render import plan_text, relative
from tui.train_modes import missing, savable
from tui.widgets.nav_bar import NavBar
from tui.widgets.train_form import TrainForm
from tui.widgets.train_panels import RunView

POLL_SECONDS = 0.3


class TrainScreen(BaseScreen):
    BINDINGS = [
        Binding("ctrl+s", "start", "Start", priority=True),
        Binding("ctrl+t", "stop", "Stop", priority=True),
        Binding("ctrl+r", "resume", "Resume", priority=True),
        Binding("ctrl+o", "load_yaml", "Load", priority=True),
        Binding("ctrl+y", "save_yaml", "Save", priority=True),
        Binding("ctrl+p", "plan", "Plan", priority=True),  # free: the app has no command palette
    ]
    HELP = ("The form: empty fields use the engine's default (shown in grey). "
            "… next to a field picks a model, run or file; typing works too.",
            "kind switches the fields (SFT, DPO, reward model, GRPO, online DPO); advanced has the rest.",
            "GRPO / online DPO rewards: comma-separated sources, e.g. ifeval, length:20-120, python:r.py:fn:0.5.",
            "Loading a YAML replaces the whole form (kind too, when the file has DPO, reward-model, "
            "GRPO or online DPO keys).")

    def __init__(self) -> None:
        super().__init__()
        self.follower: RunFollower | None = None
        self.proc = None  # the Popen we started, reaped so a finished trainer is no zombie
        self._shown_state: tuple | None = None

    def compose(self) -> ComposeResult:
        yield NavBar()
        with Horizontal(id="train-body", classes="body"):
            with Vertical(id="train-left", classes="pane-a"):
                yield TrainForm(id="train-form")
                with Horizontal(classes="buttons", id="train-buttons"):
                    yield Button("Start", id="start", variant="success", compact=True)
                    yield Button("Stop", id="stop", variant="error", compact=True, disabled=True)
                    yield Button("Resume", id="resume", compact=True, disabled=True)
                    yield Button("Load", id="load-yaml", compact=True)
                    yield Button("Save", id="save-yaml", compact=True)
                    yield Button("Plan", id="plan-button", compact=True)
                yield Static("", id="plan")
                yield Static("", id="error", classes="error")
            yield RunView(id="run-view", classes="pane-b")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.query_one("#plan").display = False
        settings = self.app.settings
        if settings.get("model"):
            self.query_one(TrainForm).set_value("model", settings["model"])
        if "attach" not in settings and not settings.get("no_reattach"):
            running = self.app.running_run()
            if running:  # reopening the app while a run trains: follow it again
                settings["attach"] = running
                self.notify(f"following {relative(running)} (still training)")
        self.set_interval(POLL_SECONDS, self.poll_run)

    def on_screen_resume(self) -> None:
        settings = self.app.settings
        form_request = settings.pop("form", None)
        if form_request:
            self.fill_form(**form_request)
        path = settings.pop("attach", None)
        if path:
            self.attach(path)
            if settings.pop("resume", False):
                self.action_resume()

    def fill_form(self, kind: str, values: dict, note: str = "", focus: str | None = None) -> None:
        form = self.query_one(TrainForm)
        form.fill(values, kind)
        if focus:  # this screen's focus, even while the app is still switching to it
            self.set_focus(self.query_one(f"#f-{focus}"))
        if note:
            self.notify(note, timeout=8)

    # -- following -------------------------------------------------------------------------
    def attach(self, run_dir: str | Path) -> None:
        self.follower = RunFollower(run_dir)
        self.query_one(RunView).clear()
        self.poll_run(force=True)

    def poll_run(self, force: bool = False) -> None:
        f = self.follower
        if f is None:
            self._update_controls()
            return
        exited = self.proc is not None and self.proc.poll() is not None
        changed = f.poll() or force
        extra = ""
        if exited and f.status not in ENDED:
            # The trainer died without writing a final status (or before writing its record).
            extra = process.console_tail(f.path) or f"trainer exited with code {self.proc.returncode}"
            f.info = {**f.info, "status": "failed", "error": f.info.get("error") or extra}
            changed = True
        if exited:
            self.proc = None
        view = self.query_one(RunView)
        if changed:
            view.show(f, extra)
        else:
            view.show_activity(f)  # elapsed and ETA move with the clock
        self._update_controls()

    @property
    def run_status(self) -> str | None:
        return self.follower.status if self.follower else None

    @property
    def own_run_going(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _update_controls(self) -> None:
        """Start/Stop/Resume (buttons and footer keys) only when they make sense."""
        state = (self.run_status, self.own_run_going)
        if state == self._shown_state:
            return
        self._shown_state = state
        status, going = state
        self.query_one("#start", Button).disabled = going
        self.query_one("#stop", Button).disabled = status not in LIVE
        self.query_one("#resume", Button).disabled = status not in RESUMABLE or going
        self.refresh_bindings()

    def check_action(self, action: str, parameters) -> bool | None:
        if action == "start":
            return not self.own_run_going
        if action == "stop":
            return self.run_status in LIVE
        if action == "resume":
            return self.run_status in RESUMABLE and not self.own_run_going
        return True

    # -- actions ---------------------------------------------------------------------------
    def on_input_submitted(self, event) -> None:
        if event.input.id == "f-yaml":  # enter in the YAML file field loads it
            self.action_load_yaml()

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
        if self.own_run_going:
            raise RuntimeError("a run started here is still going; stop it first")
        form, values = self._form_values()
        process.mode_config(form.kind, values)  # the engine's own checks, before a process starts
        name = form.run_name or default_run_name(form.kind)
        run_dir = Path(self.app.settings["runs_root"]) / name
        self.proc = process.start_training(form.mode.train_command, values, run_dir,
                                           cwd=self.app.settings.get("cwd"))
        self.attach(run_dir)
        self.notify(f"started {relative(run_dir)}")

    def _form_values(self) -> tuple[TrainForm, dict]:
        form = self.query_one(TrainForm)
        values = form.all_values()
        needed = missing(form.kind, values)
        if needed:
            raise ValueError("; ".join(needed))
        return form, values

    # -- plan ------------------------------------------------------------------------------
    def action_plan(self) -> None:
        self._guard(self._plan)

    def _plan(self) -> None:
        self._show_plan("")  # a failed attempt must not leave an older prediction looking current
        if self.query_one(TrainForm).kind != "sft":
            raise ValueError("plan predicts SFT runs only; DPO, reward-model and online RL memory and speed "
                             "are not modelled yet")
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
            self.follower.stop_requested = True  # "stopping" now, not when the trainer says so
            self.poll_run(force=True)
            self.notify(f"asked trainer {pid} to checkpoint and stop")
        self._guard(stop)

    def action_resume(self) -> None:
        def resume():
            if self.follower is None:
                raise RuntimeError("no run attached: pick one in Runs (F2)")
            if self.follower.status not in RESUMABLE:
                raise RuntimeError(f"run is {self.follower.status}; only a stopped or failed run resumes")
            self.proc = process.resume_training(self.follower.path, cwd=self.app.settings.get("cwd"))
            self.attach(self.follower.path)
        self._guard(resume)

    def action_load_yaml(self) -> None:
        def load():
            from localtune.config import read_yaml

            from tui.train_modes import yaml_keys_of_all_modes

            form = self.query_one(TrainForm)
            path = form.yaml_path or "config.yaml"
            kind = form.fill(read_yaml(path, extra_keys=yaml_keys_of_all_modes()))
            self.notify(f"loaded {path} ({kind.upper()}); the rest of the form was reset")
        self._guard(load)

    def action_save_yaml(self) -> None:
        def save():
            form = self.query_one(TrainForm)
            if not form.yaml_path:
                raise ValueError("type a YAML file name first")
            process.write_config(form.yaml_path, savable(form.kind, form.all_values()),
                                 kind=form.mode.train_command)
            self.notify(f"saved {form.yaml_path}")
        self._guard(save)
