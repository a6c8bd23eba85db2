"""Chat: a model and (optionally) a run's adapter, streaming answers, system prompt, sampling,
and A/B mode (the same prompt answered by base and tuned side by side). Generation runs in a
thread worker that only posts pieces; ctrl+t stops it between tokens. Picking another adapter
loads it at once, and every answer is headed by what answered it."""

from __future__ import annotations

import threading
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static

from localtune.runs import read_run
from tui.base import BaseScreen
from tui.choices import run_choices
from tui.messages import ChatDone, ChatPiece, ChatReady
from tui.render import relative
from tui.widgets.nav_bar import NavBar
from tui.widgets.pickers import pick_into

SIDES = ("base", "tuned")


def model_of_run(run_dir: str | Path) -> str | None:
    """The base model the run was trained on (None: unknown, the default model)."""
    return read_run(run_dir).model


def short_label(model: str | None, adapter: str | None) -> str:
    """"model + run" in names, not paths: it has to fit one line at 80 columns."""
    name = Path(model).name if model else "default model"
    return name + (f" + {Path(adapter).name}" if adapter else "")


class ChatScreen(BaseScreen):
    BINDINGS = [
        Binding("ctrl+l", "load", "Load", priority=True),
        Binding("ctrl+b", "toggle_ab", "A/B", priority=True),
        Binding("ctrl+t", "stop", "Stop", priority=True),
        Binding("ctrl+n", "new", "New chat", priority=True),
    ]
    HELP = ("Picking an adapter loads it at once (with its run's model when the model field is empty); "
            "the conversation goes on with it.",
            "Each answer starts with what answered it: the run's name (adapter on) or 'base'.",
            "enter in the message field sends; enter in the model field loads.")

    def __init__(self) -> None:
        super().__init__()
        self.session = None
        self.generating = False
        self.loading = False
        self.stop_event = threading.Event()
        self.transcript: dict[str, Text] = {s: Text() for s in SIDES}
        self.answers: dict[str, str] = {s: "" for s in SIDES}
        self.wanted_adapter: str | None = None  # what the session has (or is loading)
        self.answerer = "model"  # who answers in the single pane: the run's name or "base"

    def compose(self) -> ComposeResult:
        yield NavBar()
        with Horizontal(id="chat-top", classes="bar"):
            yield Label("model", classes="bar-label")
            yield Input(placeholder="empty: the adapter's model (… picks)", id="chat-model", compact=True)
            yield Button("…", id="pick-model", classes="pick", compact=True)
            yield Label("adapter", classes="bar-label")
            yield Select([], prompt="none (base model)", id="chat-adapter", compact=True)
            yield Button("Load", id="load", variant="primary", compact=True)
        with Horizontal(id="chat-settings", classes="bar"):
            yield Label("system", classes="bar-label")
            yield Input(placeholder="system prompt (optional)", id="chat-system", compact=True)
            yield Label("temp", classes="bar-label")
            yield Input("0.0", id="chat-temp", classes="num", compact=True)
            yield Label("top-p", classes="bar-label")
            yield Input("1.0", id="chat-top-p", classes="num", compact=True)
            yield Label("max", classes="bar-label")
            yield Input("256", id="chat-max", classes="num", compact=True)
            yield Checkbox("A/B", False, id="chat-ab", compact=True)
        yield Static("no model loaded: pick an adapter or press ctrl+l", id="chat-status", markup=False)
        yield Static("", id="error", classes="error")
        with Horizontal(id="chat-panes"):
            with Vertical(id="pane-base", classes="pane"):
                yield Label("base (adapter off)", classes="pane-title")
                with VerticalScroll(id="scroll-base"):
                    yield Static("", id="answer-base")
            with Vertical(id="pane-tuned", classes="pane"):
                yield Label("answer", id="title-tuned", classes="pane-title")
                with VerticalScroll(id="scroll-tuned"):
                    yield Static("", id="answer-tuned")
        with Horizontal(id="chat-bottom", classes="bar"):
            yield Label("you", classes="bar-label")
            yield Input(placeholder="message (enter sends)", id="chat-prompt", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.query_one("#pane-base").display = False
        if self.app.settings.get("model"):
            self.query_one("#chat-model", Input).value = self.app.settings["model"]

    def on_screen_resume(self) -> None:
        select = self.query_one("#chat-adapter", Select)
        options = [(Path(value).name, value) for _, value in run_choices(self.app.settings["runs_root"])]
        if options != getattr(self, "_options", None):
            value = select.value
            self._options = options
            select.set_options(options)
            if value in [v for _, v in options]:
                select.value = value
        wanted = self.app.settings.pop("chat_adapter", None)
        if wanted:
            wanted = relative(wanted)
            if wanted not in [v for _, v in options]:
                self.show_error(f"{wanted} has no saved adapter to chat with")
                return
            self.query_one("#chat-model", Input).value = ""  # the run's own model
            select.value = wanted
            self.call_after_refresh(self._adapter_maybe_changed)

    @property
    def ab(self) -> bool:
        return self.query_one("#chat-ab", Checkbox).value

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.query_one("#pane-base").display = event.value
        self.query_one("#title-tuned", Label).update("tuned (adapter on)" if event.value else "answer")

    def action_toggle_ab(self) -> None:
        box = self.query_one("#chat-ab", Checkbox)
        box.value = not box.value

    # -- loading ---------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "load":
            self.action_load()
        elif event.button.id == "pick-model":
            pick_into(self, "model", self.query_one("#chat-model", Input))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "chat-adapter":
            # after the refresh: set_options + restoring a value post two changes; act on the result
            self.call_after_refresh(self._adapter_maybe_changed)

    def selected_adapter(self) -> str | None:
        value = self.query_one("#chat-adapter", Select).value
        return None if value in (Select.BLANK, None) else str(value)

    def _adapter_maybe_changed(self) -> None:
        """A new adapter in the dropdown takes effect now: the model (re)loads with it."""
        if self.selected_adapter() != self.wanted_adapter and not self.loading:
            if self.generating:
                self.query_one("#chat-status", Static).update("the new adapter loads when this answer ends")
            else:
                self.action_load()

    def action_load(self) -> None:
        if self.generating:
            self.show_error("wait for the answer (or ctrl+t) before loading another model")
            return
        adapter = self.selected_adapter()
        model = self.query_one("#chat-model", Input).value.strip() or (model_of_run(adapter) if adapter else None)
        self.clear_error()
        self.loading = True
        self.wanted_adapter = adapter
        self.query_one("#chat-status", Static).update(f"loading {short_label(model, adapter)} ...")
        self.load_session(model, adapter, self.query_one("#chat-system", Input).value.strip() or None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-load")
    def load_session(self, model: str | None, adapter: str | None, system: str | None) -> None:
        from localtune.chat import ChatSession

        session = ChatSession.open(model, adapter, system)
        label = short_label(model, adapter)
        self.post_message(ChatReady(session, label))

    def on_chat_ready(self, msg: ChatReady) -> None:
        history = self.session.history if self.session is not None else []
        self.session = msg.session
        self.session.history = list(history)  # the conversation goes on with the new adapter
        self.loading = False
        adapter = self.session.adapter_path
        self.answerer = Path(adapter).name if adapter else "base"
        self.query_one("#chat-status", Static).update(
            f"ready: {msg.label}" + ("  (adapter on)" if adapter else "  (no adapter)"))
        if self.transcript["tuned"].plain:
            self.transcript["tuned"].append(f"\n— now answering: {msg.label} —\n", style="dim")
            self._show_side("tuned")
        self.query_one("#chat-prompt", Input).focus()
        self._adapter_maybe_changed()  # changed again while loading

    def worker_failed(self, worker) -> None:
        if worker.group == "chat-load":
            self.loading = False
            self.wanted_adapter = self.session.adapter_path if self.session is not None else None
            self.query_one("#chat-status", Static).update("loading failed: see the error above")
        self.generating = False

    # -- generating ------------------------------------------------------------------------
    def sampling(self):
        from localtune.chat import Sampling

        return Sampling(temperature=float(self.query_one("#chat-temp", Input).value or 0),
                        top_p=float(self.query_one("#chat-top-p", Input).value or 1),
                        max_tokens=int(self.query_one("#chat-max", Input).value or 256)).validate()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "chat-prompt":
            self.send(event.value)
        elif event.input.id == "chat-model":
            self.action_load()

    def send(self, prompt: str) -> None:
        prompt = prompt.strip()
        problem = ("load a model first (ctrl+l)" if self.session is None else
                   "still loading" if self.loading else
                   "still answering (ctrl+t stops)" if self.generating else
                   "A/B needs a run's adapter" if self.ab and not self.session.has_adapter else
                   "" if prompt else "type a message")
        if problem:
            self.show_error(problem)
            return
        from localtune.errors import LocaltuneError

        try:
            sampling = self.sampling()
        except ValueError:
            self.show_error("sampling settings must be numbers")
            return
        except LocaltuneError as e:  # out of range: max tokens 0, a negative temperature ...
            self.show_error(str(e).replace("--", "", 1))
            return
        self.clear_error()
        self.session.system = self.query_one("#chat-system", Input).value.strip() or None
        self.query_one("#chat-prompt", Input).value = ""
        sides = SIDES if self.ab else ("tuned",)
        for side in sides:
            self.answers[side] = ""
            who = "base" if side == "base" else self.answerer
            self.transcript[side].append(f"\nyou: {prompt}\n", style="bold")
            self.transcript[side].append(f"{who}: ", style="bold cyan")
            self._show_side(side)
        self.generating = True
        self.stop_event.clear()
        self.query_one("#chat-status", Static).update("answering ... (ctrl+t stops)")
        self.generate(prompt, sampling, sides)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-gen")
    def generate(self, prompt: str, sampling, sides: tuple[str, ...]) -> None:
        session = self.session
        try:
            for side in sides:
                if len(sides) > 1:
                    session.set_adapter(side == "tuned")
                for piece in session.stream(prompt, sampling, remember=len(sides) == 1):
                    if self.stop_event.is_set():
                        break
                    self.post_message(ChatPiece(side, piece))
                self.post_message(ChatDone(side, self.stop_event.is_set()))
        finally:
            if len(sides) > 1 and session.has_adapter:
                session.set_adapter(True)

    def on_chat_piece(self, msg: ChatPiece) -> None:
        self.answers[msg.side] += msg.text
        self.transcript[msg.side].append(msg.text)
        self._show_side(msg.side)

    def on_chat_done(self, msg: ChatDone) -> None:
        if msg.side == "tuned":
            self.generating = False
            self.query_one("#chat-status", Static).update(
                f"{'stopped' if msg.stopped else 'done'}: answered by {self.answerer}")
            self._adapter_maybe_changed()

    def _show_side(self, side: str) -> None:
        self.query_one(f"#answer-{side}", Static).update(self.transcript[side])
        scroll = self.query_one(f"#scroll-{side}", VerticalScroll)
        scroll.call_after_refresh(scroll.scroll_end, animate=False)  # follow the newest text

    def action_stop(self) -> None:
        self.stop_event.set()

    def action_new(self) -> None:
        if self.session is not None:
            self.session.reset()
        for side in SIDES:
            self.transcript[side] = Text()
            self.answers[side] = ""
            self._show_side(side)
