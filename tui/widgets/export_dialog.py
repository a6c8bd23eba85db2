"""The Runs screen's export dialog: pick a format, an output path and (optionally) a hub repo.
Dismisses with {"fmt", "out", "push"} or None (escape / Cancel)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet

FORMATS = (("peft", "PEFT adapter (transformers + peft)"), ("fused", "fused mlx_lm model"),
           ("gguf", "GGUF file (llama.cpp, fp16)"))


def default_out(run: str | Path, fmt: str) -> str:
    """As `localtune export`: RUN/export-FORMAT (a .gguf file for gguf)."""
    return str(Path(run) / (f"export-{fmt}" + (".gguf" if fmt == "gguf" else "")))


class ExportDialog(ModalScreen[dict | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "export", "Export")]

    def __init__(self, run: dict) -> None:
        super().__init__()
        self.run_dir = run["path"]
        self.run_name = run["name"]
        self.fmt = "peft"

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            yield Label(f"Export run {self.run_name}", id="export-title")
            with RadioSet(id="export-format"):
                for i, (fmt, label) in enumerate(FORMATS):
                    yield RadioButton(f"{fmt}: {label}", value=i == 0, id=f"fmt-{fmt}")
            yield Label("output path")
            yield Input(default_out(self.run_dir, self.fmt), id="export-out")
            yield Label("push to hub repo id (optional; needs network and a token)")
            yield Input(placeholder="user/repo", id="export-push")
            with Horizontal(classes="buttons"):
                yield Button("Export (ctrl+s)", id="export-ok", variant="primary")
                yield Button("Cancel (esc)", id="export-cancel")

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        fmt = (event.pressed.id or "fmt-peft").removeprefix("fmt-")
        out = self.query_one("#export-out", Input)
        if out.value.strip() in ("", default_out(self.run_dir, self.fmt)):  # not edited: follow
            out.value = default_out(self.run_dir, fmt)
        self.fmt = fmt

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_export()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "export-ok":
            self.action_export()
        else:
            self.action_cancel()

    def action_export(self) -> None:
        out = self.query_one("#export-out", Input).value.strip() or default_out(self.run_dir, self.fmt)
        push = self.query_one("#export-push", Input).value.strip() or None
        self.dismiss({"fmt": self.fmt, "out": out, "push": push})

    def action_cancel(self) -> None:
        self.dismiss(None)
