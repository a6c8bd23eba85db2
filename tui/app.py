"""The localtune app: five screens as modes (F1-F5), one stylesheet, settings from the CLI."""

from __future__ import annotations

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


class LocaltuneApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "localtune"
    ENABLE_COMMAND_PALETTE = False
    SUB_TITLE = "data → train → watch → chat → compare"
    MODES = {"train": TrainScreen, "runs": RunsScreen, "datasets": DatasetsScreen,
             "chat": ChatScreen, "models": ModelsScreen, "rate": RateScreen}
    BINDINGS = [
        Binding("f1", "switch_mode('train')", "Train"),
        Binding("f2", "switch_mode('runs')", "Runs"),
        Binding("f3", "switch_mode('datasets')", "Data"),
        Binding("f4", "switch_mode('chat')", "Chat"),
        Binding("f5", "switch_mode('models')", "Models"),
        Binding("f6", "switch_mode('rate')", "Rate", show=False),  # F6 in tui/README.md; not in every footer
        Binding("ctrl+q", "quit", "Quit", priority=True),
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

    def watch_run(self, run_dir: str | Path, resume: bool = False) -> None:
        """Follow a run on the Train screen (a run started here, from the CLI, or earlier)."""
        self.settings["attach"] = str(run_dir)
        self.settings["resume"] = resume
        if self.current_mode == "train":
            self.screen.on_screen_resume()
        else:
            self.switch_mode("train")

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
