"""The localtune app: five screens as modes (F1-F5), one stylesheet, settings from the CLI, and
what every screen shares: help (?), a screenshot key (F12), and hand-offs between screens
(watch a run, fill the Train form, chat with a run)."""

from __future__ import annotations

import time
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from localtune.runs.layout import DEFAULT_ROOT

from tui.screens.chat import ChatScreen
from tui.screens.datasets import DatasetsScreen
from tui.screens.models import ModelsScreen
from tui.screens.rate import RateScreen
from tui.screens.runs import RunsScreen
from tui.screens.train import TrainScreen

SCREENS = ("train", "runs", "datasets", "chat", "models", "rate")
SCREENSHOT_DIR = "screenshots"  # under the working directory, next to adapters/


class LocaltuneApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "localtune"
    ENABLE_COMMAND_PALETTE = False
    # Below 100 columns the screens stack their panes (Screen gets the -narrow class).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    MODES = {"train": TrainScreen, "runs": RunsScreen, "datasets": DatasetsScreen,
             "chat": ChatScreen, "models": ModelsScreen, "rate": RateScreen}
    # F-keys live in the top bar of every screen (widgets/nav_bar.py), not in the footer.
    BINDINGS = [
        Binding("f1", "switch_mode('train')", "Train screen", show=False),
        Binding("f2", "switch_mode('runs')", "Runs screen", show=False),
        Binding("f3", "switch_mode('datasets')", "Datasets screen", show=False),
        Binding("f4", "switch_mode('chat')", "Chat screen", show=False),
        Binding("f5", "switch_mode('models')", "Models screen", show=False),
        # F6 is in tui/README.md and the help; the top bar keeps to five screens to fit 80 columns
        Binding("f6", "switch_mode('rate')", "Rate screen (rate answers)", show=False),
        Binding("question_mark", "help", "Help: the keys of this screen", show=False),
        Binding("f12", "screenshot", f"Screenshot (SVG, saved under {SCREENSHOT_DIR}/)", show=False),
        # in the top bar, not the footer: Runs needs the footer's 80 columns for its own keys
        Binding("ctrl+q", "quit", "Quit", priority=True, show=False, tooltip="Quit (running trainings go on)"),
    ]

    def __init__(self, *, runs_root: str | Path = DEFAULT_ROOT, model: str | None = None,
                 start: str = "train", cwd: str | Path | None = None, run: str | None = None):
        super().__init__()
        if start not in SCREENS:
            raise ValueError(f"unknown screen {start!r}; one of {', '.join(SCREENS)}")
        self.settings: dict = {"runs_root": str(runs_root), "model": model, "cwd": cwd}
        if run:
            self.settings["attach"] = run
            start = "train"
        self.start_mode = start

    def on_mount(self) -> None:
        self.switch_mode(self.start_mode)

    # -- hand-offs between screens ---------------------------------------------------------
    def hand_off(self, mode: str, **request) -> None:
        """Leave `request` in settings for `mode`'s screen (it reads it on resume) and show it."""
        self.settings.update(request)
        if self.current_mode == mode:
            self.screen.on_screen_resume()
        else:
            self.switch_mode(mode)

    def watch_run(self, run_dir: str | Path, resume: bool = False) -> None:
        """Follow a run on the Train screen (a run started here, from the CLI, or earlier)."""
        self.hand_off("train", attach=str(run_dir), resume=resume)

    def fill_train_form(self, kind: str, values: dict, note: str = "", focus: str | None = None) -> None:
        self.hand_off("train", form={"kind": kind, "values": values, "note": note, "focus": focus})

    def chat_with(self, run_dir: str | Path) -> None:
        self.hand_off("chat", chat_adapter=str(run_dir))

    def running_run(self) -> str | None:
        """The newest run under runs_root whose trainer is alive (to re-attach on open). Reads the
        run records only (list_runs would read every metrics log as well)."""
        from localtune.runs import is_run_dir, read_run

        root = Path(self.settings["runs_root"])
        live = []
        for d in (root.iterdir() if root.is_dir() else ()):
            if d.is_dir() and is_run_dir(d):
                info = read_run(d)  # the effective status: a killed trainer reads "interrupted"
                if info.is_training:
                    started = info.record.get("started")
                    live.append((started if isinstance(started, (int, float)) else 0, str(d)))
        return max(live)[1] if live else None

    # -- everywhere ------------------------------------------------------------------------
    def action_help(self) -> None:
        from tui.widgets.help_screen import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_screenshot(self) -> None:
        folder = Path(self.settings.get("cwd") or ".") / self.settings.get("screenshots", SCREENSHOT_DIR)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            name = f"localtune-{self.current_mode}-{time.strftime('%Y%m%d-%H%M%S')}.svg"
            path = self.save_screenshot(filename=name, path=str(folder))
        except OSError as e:
            self.notify(f"cannot save the screenshot in {folder}: {e}", severity="error")
            return
        from tui.render import relative

        self.notify(f"screenshot saved: {relative(path)}", title="screenshot", timeout=8)

    def rate_run(self, run_dir: str | Path) -> None:
        """Sample a run's answers and rate them on the Rate screen."""
        self.settings["rate_run"] = str(run_dir)
        if self.current_mode == "rate":
            self.screen.on_screen_resume()
        else:
            self.switch_mode("rate")


def create_app(**kwargs) -> LocaltuneApp:
    """The one factory the CLI (`localtune tui`) and the tests use."""
    return LocaltuneApp(**kwargs)
