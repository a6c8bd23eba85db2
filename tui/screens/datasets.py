"""Datasets: pick a file, check it (format, rows, problems as file:line, duplicates, token
lengths against the max length), browse rows with the trained tokens highlighted, split it.
The model field takes the same names as everywhere (tui.choices); if its tokenizer cannot be
loaded the file's stats stay and the error says why."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Footer, Input, Label, OptionList, Static, TabbedContent, TabPane

from tui import render as views
from tui.base import BaseScreen
from tui.choices import MODEL_HINT
from tui.dialogs import ConfirmDialog
from tui.messages import DatasetLoaded, SplitDone
from tui.render import relative
from tui.widgets.curve_plot import HistogramPlot
from tui.widgets.nav_bar import NavBar
from tui.widgets.pickers import DataFiles, pick_into


def split_dir(path: str | Path) -> Path:
    src = Path(path)
    return src.parent / f"{src.stem}-split"


class DatasetsScreen(BaseScreen):
    BINDINGS = [
        Binding("ctrl+o", "open", "Open", priority=True),
        Binding("ctrl+s", "split", "Split", priority=True),
    ]
    HELP = ("enter in a field (or ctrl+o) opens the file; … picks a file or a model.",
            f"model: {MODEL_HINT}; it only tokenizes (token lengths, the trained-token preview).",
            "enter on a problem jumps to its line: the raw row and its message.",
            "Split writes <name>-split/train.jsonl and valid.jsonl (asks before replacing them).")

    def __init__(self) -> None:
        super().__init__()
        self.loaded: DatasetLoaded | None = None
        self.pending_problem = None
        self.problem_shown: int | None = None
        self.summary = ""

    def compose(self) -> ComposeResult:
        yield NavBar()
        with Horizontal(id="ds-body", classes="body"):
            with Vertical(id="ds-left", classes="pane-a"):
                with Horizontal(classes="field"):
                    yield Label("file", classes="field-label")
                    yield Input(placeholder="dataset file (enter opens)", id="ds-path", compact=True)
                    yield Button("…", id="pick-path", classes="pick", compact=True)
                with Horizontal(classes="field"):
                    yield Label("model", classes="field-label")
                    yield Input(placeholder="for token lengths (optional)", id="ds-model", compact=True)
                    yield Button("…", id="pick-model", classes="pick", compact=True)
                with Horizontal(classes="field"):
                    yield Label("max length", classes="field-label")
                    yield Input(value="2048", id="ds-maxlen", compact=True)
                yield DataFiles(self.app.settings.get("cwd") or ".", id="ds-tree")
                with Horizontal(classes="field", id="ds-split-row"):
                    yield Button("Open", id="open", variant="primary", compact=True)
                    yield Label(" valid share", classes="inline-label")
                    yield Input(value="0.1", id="ds-frac", compact=True)
                    yield Button("Split", id="split", compact=True)
            with Vertical(id="ds-right", classes="pane-b"):
                yield Static("open a dataset: pick a file (… or the tree)", id="ds-info", markup=False)
                yield Static("", id="error", classes="error", markup=False)
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
    def on_directory_tree_file_selected(self, event) -> None:
        self.query_one("#ds-path", Input).value = relative(event.path)
        self.action_open()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in ("ds-path", "ds-model", "ds-maxlen"):
            self.action_open()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        bid = event.button.id
        if bid in ("open", "split"):
            getattr(self, f"action_{bid}")()
        elif bid == "pick-path":
            pick_into(self, "file", self.query_one("#ds-path", Input), lambda _v: self.action_open())
        elif bid == "pick-model":
            pick_into(self, "model", self.query_one("#ds-model", Input),
                      lambda _v: self.loaded is not None and self.action_open())

    def action_open(self) -> None:
        path = self.query_one("#ds-path", Input).value.strip()
        if not path:
            self.show_error("type a dataset path or pick a file (…)")
            return
        try:
            max_len = int(self.query_one("#ds-maxlen", Input).value or 2048)
        except ValueError:
            self.show_error("max length must be a whole number")
            return
        self.clear_error()
        self.query_one("#ds-info", Static).update(f"reading {path} ...")
        self.load(path, self.query_one("#ds-model", Input).value.strip(), max_len)

    @work(thread=True, exclusive=True, exit_on_error=False, group="dataset")
    def load(self, path: str, model: str, max_len: int) -> None:
        from localtune.data import dataset_stats, read_dataset, tokenize_example

        dsfile = read_dataset(path)
        stats = dataset_stats(dsfile)
        raw = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        tokenizer, lengths, error = None, [], None
        if model:
            from localtune.models import load_tokenizer_only

            try:
                tokenizer = load_tokenizer_only(model)
                lengths = [len(tokenize_example(ex, tokenizer).ids) for ex in dsfile.examples]
            except Exception as e:  # the file's stats stand without token lengths
                tokenizer, lengths, error = None, [], f"model {model!r}: {e}"
        self.post_message(DatasetLoaded(path, dsfile, stats, lengths, tokenizer, max_len, raw, error))

    def on_dataset_loaded(self, msg: DatasetLoaded) -> None:
        self.loaded = msg
        self.summary = views.summary_text(msg.stats, msg.lengths, msg.max_seq_len, relative(msg.path))
        self.query_one("#ds-info", Static).update(self.summary)
        if msg.tokenizer_error:
            self.show_error(f"{msg.tokenizer_error} (model names: {MODEL_HINT})")
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
    def action_split(self) -> None:
        if not self.loaded:
            self.show_error("open a dataset first")
            return
        try:
            frac = float(self.query_one("#ds-frac", Input).value)
        except ValueError:
            self.show_error("valid share must be a number like 0.1")
            return
        out = split_dir(self.loaded.path)
        existing = [p for p in (out / "train.jsonl", out / "valid.jsonl") if p.exists()]
        path = self.loaded.path
        if not existing:
            self.split(path, frac)
            return

        def answer(yes: bool | None) -> None:
            if yes:  # the person said replace: the engine's --force
                self.split(path, frac, force=True)
            else:
                self.notify("split not written: the existing files are unchanged")

        names = " and ".join(relative(p) for p in existing)
        self.app.push_screen(ConfirmDialog(f"{names} already exist. Replace them with a new split?"), answer)

    @work(thread=True, exclusive=True, exit_on_error=False, group="split")
    def split(self, path: str, frac: float, force: bool = False) -> None:
        from localtune.data import split_dataset

        train, valid = split_dataset(path, split_dir(path), valid_fraction=frac, force=force)
        count = lambda p: len(Path(p).read_text(encoding="utf-8").splitlines())  # noqa: E731
        self.post_message(SplitDone(str(train), str(valid), count(train), count(valid)))

    def on_split_done(self, msg: SplitDone) -> None:
        text = (f"split written: {relative(msg.train)} ({msg.n_train} rows), "
                f"{relative(msg.valid)} ({msg.n_valid} rows)")
        self.notify(text, timeout=8)
        self.query_one("#ds-info", Static).update(f"{self.summary}\n{text}")
