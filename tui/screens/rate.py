"""Rate: a feedback session's prompt and its 2-4 candidate answers side by side (stacked below 100
columns), rated with the keys of `localtune feedback rate` (1-4 best, then worst; t tie, s skip,
e edit, u undo). The keys, the labels log and the session lock are localtune.feedback.rating's
Rater: every label is appended and fsynced as it is given, and reopening continues where rating
stopped. From the Runs screen (f) a run's answers are sampled first, in a thread worker."""

from __future__ import annotations

from dataclasses import dataclass
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Footer, Input, Label, Select, Static, TextArea

from tui.base import BaseScreen
from tui.render import relative
from tui.widgets.nav_bar import NavBar

NARROW = 100  # columns: below this the answers stack
MAX_ANSWERS = 4  # the keys 1-4


@dataclass
class RateSampling(Message):
    text: str


@dataclass
class RateSampled(Message):
    path: str


class AnswerPanes(Container, can_focus=True):
    """The answers; focusable so the rating keys reach the screen while no input has focus."""


class RateScreen(BaseScreen):
    DEFAULT_CSS = """
    #rate-path { width: 1fr; }
    #rate-recent { width: 1fr; }
    #rate-status { height: 1; padding: 0 1; }
    #rate-hint { height: 1; padding: 0 1; color: $accent; }
    #rate-prompt-box { height: auto; max-height: 8; border: round $primary-background; }
    #rate-answers { layout: horizontal; height: 1fr; }
    #rate-answers .answer { width: 1fr; height: 1fr; border: round $primary-background; }
    #rate-answers .answer.best { border: round $success; }
    RateScreen.narrow #rate-prompt-box { max-height: 5; }
    RateScreen.narrow #rate-answers { layout: vertical; overflow-y: auto; }
    RateScreen.narrow #rate-answers .answer { height: auto; max-height: 8; }
    #rate-edit-box { height: 1fr; }
    #rate-edit { height: 1fr; }
    """
    BINDINGS = [
        Binding("1", "key('1')", "1-4 pick"),
        Binding("2", "key('2')", show=False),
        Binding("3", "key('3')", show=False),
        Binding("4", "key('4')", show=False),
        Binding("t", "key('t')", "Tie"),
        Binding("s", "key('s')", "Skip"),
        Binding("e", "key('e')", "Edit"),
        Binding("u", "key('u')", "Undo"),
        Binding("n,enter", "key('n')", "No worst", show=False),
        Binding("escape", "back", "Back", show=False, priority=True),
        Binding("ctrl+s", "save_edit", "Save edit", show=False, priority=True),
        Binding("ctrl+o", "open", "Open"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rater = None
        self.shown = None  # the item on screen

    def compose(self) -> ComposeResult:
        yield NavBar()
        with Horizontal(classes="bar"):
            yield Select([], prompt="recent sessions", id="rate-recent", compact=True)
            yield Input(placeholder="session folder (localtune feedback sample --out DIR)", id="rate-path",
                        compact=True)
            yield Button("Open", id="rate-open", variant="primary", compact=True)
        yield Static("no session open: pick one, or press f on a run (Runs screen) to sample its answers",
                     id="rate-status", markup=False)
        yield Static("", id="rate-hint", markup=False)
        yield Static("", id="error", classes="error")
        with VerticalScroll(id="rate-prompt-box"):
            yield Static("", id="rate-prompt", markup=False)
        with AnswerPanes(id="rate-answers"):
            for i in range(1, MAX_ANSWERS + 1):  # shown as the prompt has answers
                with VerticalScroll(classes="answer", id=f"rate-answer-{i}"):
                    yield Static("", markup=False)
        with Vertical(id="rate-edit-box"):
            yield Label("edit the answer: ctrl+s saves it as the chosen answer, escape cancels")
            yield TextArea(id="rate-edit")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.query_one("#rate-edit-box").display = False
        self.set_class(self.app.size.width < NARROW, "narrow")

    def on_resize(self, event) -> None:
        self.set_class(event.size.width < NARROW, "narrow")

    def on_screen_resume(self) -> None:
        from localtune.feedback import list_sessions

        select = self.query_one("#rate-recent", Select)
        found = list_sessions("feedback", self.app.settings["runs_root"])
        select.set_options([(relative(p), str(p)) for p in found])
        run = self.app.settings.pop("rate_run", None)
        if run:
            self.sample_run_answers(run)
        path = self.app.settings.pop("rate_session", None)
        if path:
            self.open_session(path)

    def on_unmount(self) -> None:
        self._close()

    # -- opening ---------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "rate-open":
            self.action_open()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "rate-path":
            self.action_open()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "rate-recent" and event.value not in (Select.BLANK, None):
            self.open_session(str(event.value))

    def action_open(self) -> None:
        path = self.query_one("#rate-path", Input).value.strip()
        if not path:
            self.query_one("#rate-path", Input).focus()
            self.show_error("type a session folder, or pick a recent one")
            return
        self.open_session(path)

    def open_session(self, path: str) -> None:
        from localtune.errors import LocaltuneError
        from localtune.feedback import FeedbackSession, Rater

        self._close()
        try:
            self.rater = Rater(FeedbackSession.open(path))
        except LocaltuneError as e:  # not a session, unfinished, or rated elsewhere right now (lock)
            self.show_error(str(e))
            return
        self.clear_error()
        self.query_one("#rate-path", Input).value = str(path)
        self.shown = None
        self.refresh_view(f"opened {relative(path)}")
        self.query_one("#rate-answers").focus()

    def _close(self) -> None:
        if self.rater is not None:
            self.rater.close()
            self.rater = None

    # -- sampling a run's answers (Runs screen: f) --------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="rate-sample")
    def sample_run_answers(self, run: str) -> None:
        from localtune.feedback.sample import sample_for_run

        def progress(e: dict) -> None:
            if e.get("event") == "feedback" and e.get("total"):
                self.post_message(RateSampling(f"sampling answers of {relative(run)}: {e.get('done')}/{e['total']}"))
            elif e.get("event") == "phase":
                self.post_message(RateSampling(f"loading the model of {relative(run)} ..."))

        self.post_message(RateSampling(f"sampling answers of {relative(run)} ..."))
        session = sample_for_run(run, on_event=progress)
        self.post_message(RateSampled(str(session.path)))

    def on_rate_sampling(self, msg: RateSampling) -> None:
        self.query_one("#rate-status", Static).update(msg.text)

    def on_rate_sampled(self, msg: RateSampled) -> None:
        self.open_session(msg.path)

    # -- rating ----------------------------------------------------------------------------
    def action_key(self, key: str) -> None:
        if self.rater is None:
            self.show_error("open a session first")
            return
        if self.query_one("#rate-edit-box").display:
            return  # typing in the editor
        reply = self.rater.press(key)
        if reply.kind == "edit":
            self._start_edit()
        elif reply.kind == "ignored":
            self.notify(reply.message, timeout=3)
        self.refresh_view(reply.message if reply.kind in ("saved", "undone") else None)

    def action_back(self) -> None:
        if self.query_one("#rate-edit-box").display:
            self.rater.cancel_edit()
            self._end_edit()
            self.refresh_view("edit cancelled")
        elif self.rater is not None:
            self.refresh_view(self.rater.press("escape").message)

    def action_save_edit(self) -> None:
        if self.rater is None or not self.query_one("#rate-edit-box").display:
            return
        reply = self.rater.submit_edit(self.query_one("#rate-edit", TextArea).text)
        if reply.kind == "ignored":
            self.show_error(reply.message)
            return
        self.clear_error()
        self._end_edit()
        self.refresh_view(reply.message)

    def _start_edit(self) -> None:
        editor = self.query_one("#rate-edit", TextArea)
        editor.text = self.rater.item.candidates[self.rater.edit_target].text
        self.query_one("#rate-edit-box").display = True
        self.query_one("#rate-answers").display = False
        editor.focus()

    def _end_edit(self) -> None:
        self.query_one("#rate-edit-box").display = False
        self.query_one("#rate-answers").display = True
        self.query_one("#rate-answers").focus()

    # -- showing ---------------------------------------------------------------------------
    def refresh_view(self, message: str | None = None) -> None:
        r = self.rater
        status = r.progress().text() + (f" · {message}" if message else "")
        self.query_one("#rate-status", Static).update(status)
        self.query_one("#rate-hint", Static).update(r.hint(quit_key=False))
        if r.item is not self.shown:
            self._show_item()
        for i, pane in enumerate(self.query(".answer")):
            pane.set_class(r.best == i, "best")

    def _show_item(self) -> None:
        item = self.rater.item
        self.shown = item
        panes = list(self.query(".answer"))
        if item is None:
            for pane in panes:
                pane.display = False
            self.query_one("#rate-prompt", Static).update(f"every prompt of this session is rated; "
                                                          f"export: localtune feedback export {self.rater.session.path} "
                                                          "--out pairs.jsonl")
            return
        prompt = Text()
        for k, m in enumerate(item.messages):
            prompt.append(("\n" if k else "") + f"{m['role']}: ", style="bold")
            prompt.append(m["content"])
        self.query_one("#rate-prompt", Static).update(prompt)
        self.query_one("#rate-prompt-box").border_title = \
            f"{self.rater.index + 1}/{len(self.rater.session.items)} · {item.id}"
        for i, pane in enumerate(panes):
            pane.display = i < len(item.candidates)
            if pane.display:
                c = item.candidates[i]
                pane.query_one(Static).update(c.text)
                pane.border_title = f"{i + 1}" + ("" if c.ended else " (cut at max tokens)")
                pane.scroll_home(animate=False)
