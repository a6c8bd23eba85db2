"""A run's evaluations and the answers side by side (opened from Runs with `v`).

Top: every evaluation of the run (RUN/eval/*/: `localtune eval` and eval during training), with
its headline numbers. Below: the answers of the highlighted evaluation next to those of another
model, prompt by prompt: the run marked for comparison on the Runs screen (its newest evaluation),
else the other model of the same evaluation (the base, when `localtune eval` compared them).
Reads files only (localtune.runs.list_evals); nothing here runs a model.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Label, Static

from localtune.runs import EvalInfo, list_evals
from tui.base import BaseScreen

COLUMNS = (("evaluation", 18), ("step", 5), ("model", 14), ("n", 3), ("ended", 5), ("loops", 5),
           ("checks", 6), ("IFEval", 6))


def pick_model(info: EvalInfo, run: str | Path | None = None) -> str | None:
    """The model of an evaluation that stands for `run`: the one evaluated with its adapter, else
    the first that is not the base, else the first."""
    models = info.models
    if run is not None:
        here = Path(run).resolve()
        for name, s in models.items():
            if s.get("adapter") and Path(s["adapter"]).resolve() == here:
                return name
    return next((n for n in models if n != "base"), next(iter(models), None))


def other_model(info: EvalInfo, model: str | None) -> str | None:
    """Another model of the same evaluation (the base beside the run), None when it has one."""
    return next((n for n in info.models if n != model), None)


def side_by_side(left: list[dict], right: list[dict]) -> list[tuple[str, dict | None, dict | None]]:
    """(prompt, left answer, right answer) for every prompt, matched by prompt text (and its key,
    so two rows with the same text stay apart), in the left side's order."""
    def key(a: dict):
        return (a.get("prompt"), str(a.get("key")))

    rights = {key(a): a for a in right}
    by_prompt = {}
    for a in right:
        by_prompt.setdefault(a.get("prompt"), a)
    out, used = [], set()
    for a in left:
        b = rights.get(key(a)) or by_prompt.get(a.get("prompt"))
        if b is not None:
            used.add(id(b))
        out.append((a.get("prompt") or "", a, b))
    out += [(b.get("prompt") or "", None, b) for b in right if id(b) not in used]
    return out


def answers_of(info: EvalInfo, model: str | None) -> list[dict]:
    return [a for a in info.answers() if a.get("model") == model]


def _num(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def _answer(row: dict | None, title: str) -> Text:
    text = Text(f"{title}\n", style="bold")
    if row is None:
        return text.append("(no answer to this prompt)", style="dim")
    marks = [m for m, bad in (("loops", row.get("loops")), ("no end", row.get("ended") is False)) if bad]
    failed = [c for c, ok in (row.get("checks") or {}).items() if not ok]
    if marks or failed:
        text.append(" ".join(f"[{m}]" for m in marks + [f"✗ {c}" for c in failed]) + "\n", style="red")
    return text.append(str(row.get("response", "")))


class RunEvalsScreen(BaseScreen):
    DEFAULT_CSS = """
    RunEvalsScreen #evals-table { height: 8; }
    RunEvalsScreen #evals-title, RunEvalsScreen #answers-title { text-style: bold; height: auto; }
    RunEvalsScreen #answers { height: 1fr; }
    RunEvalsScreen .prompt { color: $accent; margin-top: 1; height: auto; }
    RunEvalsScreen .pair { height: auto; }
    RunEvalsScreen .answer { width: 1fr; height: auto; padding: 0 1; border-left: solid $primary-background; }
    """
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, run: str | Path, compare: str | Path | None = None) -> None:
        super().__init__()
        self.run = Path(run)
        self.compare = Path(compare) if compare and Path(compare) != self.run else None
        self.evals: list[EvalInfo] = []
        self.shown: EvalInfo | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(f"evaluations of {self.run.name}", id="evals-title")
        yield DataTable(id="evals-table", cursor_type="row", zebra_stripes=True)
        yield Label("", id="answers-title")
        yield VerticalScroll(id="answers")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, width in COLUMNS:
            table.add_column(label, width=width)
        self.evals = [e for e in list_evals(self.run) if e.problem is None]
        for e in self.evals:
            model = pick_model(e, self.run)
            s = e.models.get(model, {})
            table.add_row(e.name, "-" if e.step is None else str(e.step), model or "-", str(s.get("answers", "-")),
                          _num(s.get("ended")), _num(s.get("loops")), _num(s.get("checks_passed")),
                          _num(s.get("prompt_strict")), key=e.name)
        if not self.evals:
            self.query_one("#answers-title", Label).update(
                f"no evaluations yet: `localtune eval --adapter {self.run}` or train with --eval-file")
            return
        table.move_cursor(row=len(self.evals) - 1)  # the newest
        self.show(self.evals[-1])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        found = next((e for e in self.evals if e.name == event.row_key.value), None)
        if found is not None and found is not self.shown:
            self.show(found)

    def right_side(self, info: EvalInfo, model: str | None) -> tuple[str, list[dict]] | None:
        """(title, answers) of what the highlighted evaluation is compared with."""
        if self.compare is not None:
            theirs = [e for e in list_evals(self.compare) if e.problem is None]
            if not theirs:
                return f"{self.compare.name}: no evaluations", []
            other = theirs[-1]
            name = pick_model(other, self.compare)
            return f"{self.compare.name} · {other.name} · {name}", answers_of(other, name)
        name = other_model(info, model)
        return (f"{info.name} · {name}", answers_of(info, name)) if name else None

    def show(self, info: EvalInfo) -> None:
        self.shown = info
        model = pick_model(info, self.run)
        left_title = f"{self.run.name} · {info.name} · {model}"
        right = self.right_side(info, model)
        self.query_one("#answers-title", Label).update(
            f"answers: {left_title}" + (f"  |  {right[0]}" if right else ""))
        box = self.query_one("#answers", VerticalScroll)
        box.remove_children()
        rows = side_by_side(answers_of(info, model), right[1] if right else [])
        widgets = []
        for prompt, a, b in rows:
            widgets.append(Static(Text(prompt), classes="prompt"))
            cells = [Static(_answer(a, model or "-"), classes="answer")]
            if right:
                cells.append(Static(_answer(b, right[0].rsplit(" · ", 1)[-1]), classes="answer"))
            widgets.append(Horizontal(*cells, classes="pair"))
        box.mount_all(widgets)
