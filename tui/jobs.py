"""Run a localtune command (e.g. `localtune eval --adapter RUN`) as a subprocess for a screen and
hand back its output: the screen starts it in a thread worker and shows the output when it ends.
Generic on purpose: any command that prints its result works (tests use a fake one)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

OUTPUT_LINES = 400


def localtune_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "localtune", *args]


def eval_command(run_dir: str | Path, template: list[str] | None = None) -> list[str]:
    """`localtune eval --adapter RUN`; `template` (settings["eval_command"]) replaces it, with
    "{run}" standing for the run directory."""
    if template:
        return [part.replace("{run}", str(run_dir)) for part in template]
    return localtune_command("eval", "--adapter", str(run_dir))


def run_command(args: list[str], cwd: str | Path | None = None, cancelled=lambda: False) -> tuple[int, str]:
    """Run to the end (or until cancelled(): then killed); (exit code, stdout+stderr)."""
    proc = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    while True:
        try:
            out, _ = proc.communicate(timeout=0.5)
            return proc.returncode, out
        except subprocess.TimeoutExpired:
            if cancelled():
                proc.kill()
                out, _ = proc.communicate()
                return proc.returncode, out + "\n(cancelled)"


class OutputDialog(ModalScreen[None]):
    """A finished command's output (last lines), its exit status, esc to close."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, title: str, code: int, output: str, seconds: float) -> None:
        super().__init__()
        self.title_text, self.code, self.output, self.seconds = title, code, output, seconds

    def compose(self) -> ComposeResult:
        verdict = "done" if self.code == 0 else f"FAILED (exit code {self.code})"
        lines = self.output.rstrip().splitlines()[-OUTPUT_LINES:] or ["(no output)"]
        with Vertical(classes="dialog", id="output-box"):
            yield Label(f"{self.title_text}: {verdict} in {self.seconds:.0f} s", classes="dialog-title")
            with VerticalScroll(id="output-scroll"):
                yield Static("\n".join(lines), id="output-text", markup=False)  # wraps long lines
            yield Label("esc closes", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#output-scroll").scroll_end(animate=False)  # the result is at the end

    def action_close(self) -> None:
        self.dismiss(None)


def timed(fn, *args, **kw):
    t = time.monotonic()
    result = fn(*args, **kw)
    return result, time.monotonic() - t
