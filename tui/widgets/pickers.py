"""Pick a model, a run or a file instead of typing it. Each dialog dismisses with the value the
text field takes (or None on escape); `pick_into` fills an Input with it. The fields still take
anything typed: a picker only saves typing."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Label, OptionList
from textual.widgets.option_list import Option

from tui import choices
from tui.render import relative


class PickerDialog(ModalScreen[str | None]):
    """A filterable list of (label, value); `load` runs in a thread (listing models scans the
    hub cache)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, load: Callable[[], list[tuple[str, str]]], empty: str = "nothing to pick"):
        super().__init__()
        self.title_text, self.load, self.empty = title, load, empty
        self.items: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="picker-box"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(placeholder="type to filter", id="picker-filter", compact=True)
            yield OptionList(id="picker-list")
            yield Label("enter picks · esc cancels", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#picker-list", OptionList).add_option(Option("listing ...", disabled=True))
        self.query_one("#picker-filter").focus()
        self.fill()

    @work(thread=True, exclusive=True, exit_on_error=False, group="picker")
    def fill(self) -> None:
        items = self.load()
        self.app.call_from_thread(self.show_items, items)

    def show_items(self, items: Iterable[tuple[str, str]]) -> None:
        self.items = list(items)
        self.refilter(self.query_one("#picker-filter", Input).value)

    def refilter(self, text: str) -> None:
        options = self.query_one("#picker-list", OptionList)
        options.clear_options()
        text = text.strip().lower()
        shown = [(label, value) for label, value in self.items if text in label.lower()]
        options.add_options([Option(label, id=value) for label, value in shown]
                            or [Option(self.empty if not self.items else "no match", disabled=True)])
        if shown:
            options.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        self.refilter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.pick(self.query_one("#picker-list", OptionList).highlighted)

    def on_key(self, event) -> None:
        # up/down move in the list while typing in the filter
        if event.key in ("up", "down") and self.focused is self.query_one("#picker-filter"):
            options = self.query_one("#picker-list", OptionList)
            (options.action_cursor_up if event.key == "up" else options.action_cursor_down)()
            event.stop()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.pick(event.option_index)

    def pick(self, index: int | None) -> None:
        options = self.query_one("#picker-list", OptionList)
        if index is None or index >= options.option_count:
            return
        option = options.get_option_at_index(index)
        if not option.disabled and option.id is not None:
            self.dismiss(option.id)

    def on_worker_state_changed(self, event) -> None:
        if event.worker.error is not None:
            self.show_items([])
            self.notify(str(event.worker.error), title="cannot list", severity="error")

    def action_cancel(self) -> None:
        self.dismiss(None)


class DataFiles(DirectoryTree):
    """The working directory's data and config files (dot-folders and caches hidden)."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith((".", "__"))
                and (p.is_dir() or p.suffix.lower() in choices.DATA_SUFFIXES)]


class FilePickerDialog(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, root: str | Path = "."):
        super().__init__()
        self.title_text, self.root = title, root

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="picker-box"):
            yield Label(self.title_text, classes="dialog-title")
            yield DataFiles(self.root, id="picker-tree")
            yield Label("enter opens a folder or picks a file · esc cancels", classes="dialog-hint")

    def on_mount(self) -> None:
        tree = self.query_one("#picker-tree", DirectoryTree)
        tree.root.set_label(f"{self.root}/ (working directory)" if str(self.root) == "." else str(self.root))
        tree.focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(relative(event.path))

    def action_cancel(self) -> None:
        self.dismiss(None)


def picker_for(kind: str, app) -> ModalScreen:
    """The dialog for a picker kind ("model" | "run" | "file" | "yaml")."""
    if kind == "model":
        return PickerDialog("pick a model (the field also takes a folder, a .gguf or a hub id)", choices.model_choices,
                            "no models yet: import or download one on Models (F5)")
    if kind == "run":
        root = app.settings["runs_root"]
        return PickerDialog("pick a run (its adapter)", lambda: choices.run_choices(root),
                            f"no run with an adapter under {root} yet")
    return FilePickerDialog("pick a file", app.settings.get("cwd") or ".")


def pick_into(screen, kind: str, field: Input, then: Callable[[str], None] | None = None) -> None:
    """Open the picker for `kind`; the choice replaces the field's text (then `then(value)`)."""
    def chosen(value: str | None) -> None:
        if value is not None:
            field.value = value
            field.focus()
            if then is not None:
                then(value)

    screen.app.push_screen(picker_for(kind, screen.app), chosen)
