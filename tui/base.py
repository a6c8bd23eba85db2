"""What every screen shares: the one place worker failures become visible."""

from __future__ import annotations

from rich.text import Text
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from tui.render import without_cli_hints


class BaseScreen(Screen):
    def show_error(self, text: str) -> None:
        """Put `text` in the screen's #error line (if it has one) and notify."""
        text = without_cli_hints(text)
        for err in self.query("#error"):
            if isinstance(err, Static):
                err.update(Text(f"error: {text}"))  # Text: brackets in a message are not markup
                err.display = True
        self.app.notify(text, title="error", severity="error", timeout=8)

    def clear_error(self) -> None:
        for err in self.query("#error"):
            err.display = False

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Workers run with exit_on_error=False: a failure ends here, as a message, never a crash.
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.show_error(str(error) or type(error).__name__)
            self.worker_failed(event.worker)

    def worker_failed(self, worker: Worker) -> None:
        """Screens reset their busy state here."""
