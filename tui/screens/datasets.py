"""Datasets: browse to a file, check it (format, rows, problems as file:line, duplicates, token
lengths against the max length), browse rows with the trained tokens highlighted, split it."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Button,
    DataTable,
    DirectoryTree,
    Footer,
    Header,
    Input,
    OptionList,
    Static,
    TabbedContent,
    TabPane,
)

from tui import render as views
from tui.base import BaseScreen
from tui.messages import DatasetLoaded, SplitDone
from tui.render import relative
from tui.widgets.curve_plot import HistogramPlot


class DatasetsScreen(BaseScreen):
    BINDINGS = [
        Binding("ctrl+o", "open", "Open", priority=True),
        Binding("ctrl+s", "split", "Split", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.loaded: DatasetLoaded | None = None
        self.pending_problem = None
        self.problem_shown: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="ds-left"):
                yield Input(placeholder="dataset file (Enter to open)", id="ds-path", compact=True)
                yield Input(placeholder="model for token lengths (optional)", id="ds-model", compact=True)
                yield Input(value="2048", placeholder="max seq len", id="ds-maxlen", compact=True)
                yield DirectoryTree(self.app.settings.get("cwd") or ".", id="ds-tree")
                with Horizontal(classes="buttons"):
                    yield Button("Open", id="open", variant="primary", compact=True)
                    yield Input(value="0.1", id="ds-frac", compact=True)
                    yield Button("Split", id="split", compact=True)
            with Vertical(id="ds-right"):
                yield Static("open a dataset: pick a file on the left", id="ds-info")
                yield Static("", id="error", classes="error")
                with TabbedContent(id="ds-tabs"):
                    with TabPane("Overview", id="tab-overview"):
                        yield OptionList(id="ds-problems")
                        yield HistogramPlot(id="ds-hist")
                    with TabPane("Rows", id="tab-rows"):
                        yield DataTable(id="ds-rows", cursor_type="row")
                        yield Static(views.legend(), id="ds-legend")
                        with VerticalScroll(id="ds-preview-box"):
                            yield Static("", id="ds-preview")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.query_one("#ds-tree").root.set_label("./")
        self.query_one("#ds-rows", DataTable).add_columns("line", "tokens", "first user turn / text")
        if self.app.settings.get("model"):
            self.query_one("#ds-model", Input).value = self.app.settings["model"]

    # -- opening ---------------------------------------------------------------------------
    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#ds-path", Input).value = relative(event.path)
        self.action_open()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in ("ds-path", "ds-model", "ds-maxlen"):
            self.action_open()

    def action_open(self) -> None:
        path = self.query_one("#ds-path", Input).value.strip()
        if not path:
            self.show_error("type a dataset path or pick a file")
            return
        try:
            max_len = int(self.query_one("#ds-maxlen", Input).value or 2048)
        except ValueError:
            self.show_error("max seq len must be a whole number")
            return
        self.clear_error()
        self.query_one("#ds-info", Static).update(f"reading {path} ...")
        self.load(path, self.query_one("#ds-model", Input).value.strip(), max_len)

    @work(thread=True, exclusive=True, exit_on_error=False, group="dataset")
    def load(self, path: str, model: str, max_len: int) -> None:
        from localtune.data import dataset_stats, read_dataset, tokenize_example

        dsfile = read_dataset(path)
        stats = dataset_stats(dsfile)
        tokenizer, lengths = None, []
        if model:
            from transformers import AutoTokenizer

            from localtune.models import resolve_model

            tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(model)))
            lengths = [len(tokenize_example(ex, tokenizer).ids) for ex in dsfile.examples]
        raw = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        self.post_message(DatasetLoaded(path, dsfile, stats, lengths, tokenizer, max_len, raw))

    def on_dataset_loaded(self, msg: DatasetLoaded) -> None:
        self.loaded = msg
        self.query_one("#ds-info", Static).update(
            views.summary_text(msg.stats, msg.lengths, msg.max_seq_len, relative(msg.path)))
        problems = self.query_one("#ds-problems", OptionList)
        problems.clear_options()
        problems.add_options([str(p) for p in msg.dsfile.problems] or ["no problems found"])
        self.query_one(HistogramPlot).set_lengths(msg.lengths, msg.max_seq_len)
        table = self.query_one("#ds-rows", DataTable)
        table.clear()
        for i, ex in enumerate(msg.dsfile.examples):
            tokens = str(msg.lengths[i]) if msg.lengths else "-"
            table.add_row(str(ex.line), tokens, views.row_label(ex), key=str(ex.line))
        if msg.dsfile.examples:
            self.show_row(msg.dsfile.examples[0])

    # -- rows and problems -----------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.pending_problem is not None:  # the cursor moved because we jumped to a problem
            self.pending_problem = None
            return
        if self.loaded and event.row_key.value is not None:
            line = int(event.row_key.value)
            ex = next((e for e in self.loaded.dsfile.examples if e.line == line), None)
            if ex is not None:
                self.show_row(ex)

    def show_row(self, example) -> None:
        from localtune.data import preview_segments

        tok = self.loaded.tokenizer
        segments = preview_segments(example, tok) if tok is not None else views.approximate_segments(example)
        head = Text(f"line {example.line} ({example.format})" +
                    ("" if tok is not None else ", no tokenizer: turns shown approximately") + "\n\n",
                    style="bold")
        self.query_one("#ds-preview", Static).update(head + views.mask_text(segments))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Jump to a problem's line: the raw row, its message, and the table near it."""
        if not self.loaded or not self.loaded.dsfile.problems:
            return
        problem = self.loaded.dsfile.problems[event.option_index]
        raw = self.loaded.raw_lines
        text = raw[problem.line - 1] if 0 < problem.line <= len(raw) else ""
        self.query_one("#ds-tabs", TabbedContent).active = "tab-rows"
        self.query_one("#ds-preview", Static).update(
            Text(f"line {problem.line}: {problem.message}\n\n", style="bold red") + Text(text))
        table = self.query_one("#ds-rows", DataTable)
        lines = [e.line for e in self.loaded.dsfile.examples]
        near = next((i for i, ln in enumerate(lines) if ln > problem.line), len(lines) - 1)
        target = max(0, near - 1)
        if lines and table.cursor_row != target:
            self.pending_problem = problem
            table.move_cursor(row=target)
        self.problem_shown = problem.line

    # -- split -----------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id in ("open", "split"):
            getattr(self, f"action_{event.button.id}")()

    def action_split(self) -> None:
        if not self.loaded:
            self.show_error("open a dataset first")
            return
        try:
            frac = float(self.query_one("#ds-frac", Input).value)
        except ValueError:
            self.show_error("valid fraction must be a number like 0.1")
            return
        self.split(self.loaded.path, frac)

    @work(thread=True, exclusive=True, exit_on_error=False, group="split")
    def split(self, path: str, frac: float) -> None:
        from localtune.data import split_dataset

        src = Path(path)
        train, valid = split_dataset(src, src.parent / f"{src.stem}-split", valid_fraction=frac)
        self.post_message(SplitDone(str(train), str(valid)))

    def on_split_done(self, msg: SplitDone) -> None:
        self.notify(f"wrote {relative(msg.train)} and {relative(msg.valid)}")
        self.query_one("#ds-info", Static).update(
            f"split written: {relative(msg.train)}, {relative(msg.valid)}")
