"""`?`: the keys of the screen underneath (including those the footer has no room for), the
app's keys, and the screen's notes."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


def key_rows(app, bindings) -> list[tuple[str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, tuple):
            b = Binding(*b)
        if not b.description:
            continue
        keys = " / ".join(app.get_key_display(Binding(k.strip(), b.action)) for k in b.key.split(","))
        rows.append((keys, b.tooltip or b.description))  # tooltip: the longer wording
    return rows


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, screen) -> None:
        super().__init__()
        self.target = screen

    def compose(self) -> ComposeResult:
        app = self.app
        name = type(self.target).__name__.removesuffix("Screen")
        table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        table.add_column(no_wrap=True, style="bold")
        table.add_column(ratio=1)
        table.add_row(Text(name, style="bold underline"), "")
        for keys, what in key_rows(app, self.target.BINDINGS):
            table.add_row(keys, what)
        for note in getattr(self.target, "HELP", ()):
            table.add_row("", Text(note, style="italic"))
        table.add_row("", "")
        table.add_row(Text("Everywhere", style="bold underline"), "")
        for keys, what in key_rows(app, app.BINDINGS):
            table.add_row(keys, what)
        with Vertical(classes="dialog", id="help-box"):
            yield Label(f"Keys: {name} (esc closes)", classes="dialog-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(table, id="help-text")
        self.table = table

    def plain_text(self, width: int = 100) -> str:
        """What the dialog shows, as text (tests)."""
        from rich.console import Console

        console = Console(width=width, record=True, color_system=None)
        console.print(self.table)
        return console.export_text()

    def action_close(self) -> None:
        self.dismiss(None)
