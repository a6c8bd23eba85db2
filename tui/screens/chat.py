"""Chat: a model and (optionally) a run's adapter, streaming answers, system prompt, sampling,
and A/B mode (the same prompt answered by base and tuned side by side). Generation runs in a
thread worker that only posts pieces; ctrl+t stops it between tokens."""

from __future__ import annotations

import threading
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static, Switch

from localtune.runs import adapter_runs, read_run
from tui.base import BaseScreen
from tui.messages import ChatDone, ChatPiece, ChatReady
from tui.render import relative

SIDES = ("base", "tuned")


def model_of_run(run_dir: str | Path) -> str | None:
    """The base model the run was trained on (None: unknown, the default model)."""
    return read_run(run_dir).model


class ChatScreen(BaseScreen):
    BINDINGS = [
        Binding("ctrl+l", "load", "Load model", priority=True),
        Binding("ctrl+b", "toggle_ab", "A/B", priority=True),
        Binding("ctrl+t", "stop", "Stop", priority=True),
        Binding("ctrl+n", "new", "New chat", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.session = None
        self.generating = False
        self.stop_event = threading.Event()
        self.transcript: dict[str, Text] = {s: Text() for s in SIDES}
        self.answers: dict[str, str] = {s: "" for s in SIDES}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="chat-top", classes="bar"):
            yield Input(placeholder="model (dir, .gguf or hub id; empty: the adapter's)", id="chat-model", compact=True)
            yield Select([], prompt="no adapter", id="chat-adapter", compact=True)
            yield Button("Load", id="load", variant="primary", compact=True)
        with Horizontal(id="chat-settings", classes="bar"):
            yield Input(placeholder="system prompt", id="chat-system", compact=True)
            yield Label("temp")
            yield Input("0.0", id="chat-temp", classes="num", compact=True)
            yield Label("top-p")
            yield Input("1.0", id="chat-top-p", classes="num", compact=True)
            yield Label("max tok")
            yield Input("256", id="chat-max", classes="num", compact=True)
            yield Label("A/B")
            yield Switch(False, id="chat-ab")
        yield Static("no model loaded: ctrl+l loads it", id="chat-status")
        yield Static("", id="error", classes="error")
        with Horizontal(id="chat-panes"):
            with Vertical(id="pane-base", classes="pane"):
                yield Label("base (adapter off)", classes="pane-title")
                with VerticalScroll():
                    yield Static("", id="answer-base")
            with Vertical(id="pane-tuned", classes="pane"):
                yield Label("answer", id="title-tuned", classes="pane-title")
                with VerticalScroll():
                    yield Static("", id="answer-tuned")
        yield Input(placeholder="message (Enter sends)", id="chat-prompt", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.query_one("#pane-base").display = False
        if self.app.settings.get("model"):
            self.query_one("#chat-model", Input).value = self.app.settings["model"]

    def on_screen_resume(self) -> None:
        select = self.query_one("#chat-adapter", Select)
        value = select.value
        options = adapter_runs(self.app.settings["runs_root"])
        select.set_options(options)
        if value in [v for _, v in options]:
            select.value = value

    @property
    def ab(self) -> bool:
        return self.query_one("#chat-ab", Switch).value

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.query_one("#pane-base").display = event.value
        self.query_one("#title-tuned", Label).update("tuned (adapter on)" if event.value else "answer")

    def action_toggle_ab(self) -> None:
        switch = self.query_one("#chat-ab", Switch)
        switch.value = not switch.value

    # -- loading ---------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "load":
            self.action_load()

    def action_load(self) -> None:
        if self.generating:
            self.show_error("wait for the answer (or ctrl+t) before loading another model")
            return
        adapter = self.query_one("#chat-adapter", Select).value
        adapter = None if adapter in (Select.BLANK, None) else str(adapter)
        model = self.query_one("#chat-model", Input).value.strip() or (model_of_run(adapter) if adapter else None)
        self.clear_error()
        self.query_one("#chat-status", Static).update(f"loading {model or 'the default model'} ...")
        self.load_session(model, adapter, self.query_one("#chat-system", Input).value.strip() or None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-load")
    def load_session(self, model: str | None, adapter: str | None, system: str | None) -> None:
        from localtune.chat import ChatSession

        session = ChatSession.open(model, adapter, system)
        label = f"{relative(model) if model else 'default model'}" + (f" + {relative(adapter)}" if adapter else "")
        self.post_message(ChatReady(session, label))

    def on_chat_ready(self, msg: ChatReady) -> None:
        self.session = msg.session
        self.query_one("#chat-status", Static).update(f"ready: {msg.label}")
        self.query_one("#chat-prompt", Input).focus()

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
            self.transcript[side].append(f"\nyou: {prompt}\n", style="bold")
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
            self.query_one("#chat-status", Static).update("stopped" if msg.stopped else "done")

    def worker_failed(self, worker) -> None:
        self.generating = False

    def _show_side(self, side: str) -> None:
        self.query_one(f"#answer-{side}", Static).update(self.transcript[side])

    def action_stop(self) -> None:
        self.stop_event.set()

    def action_new(self) -> None:
        if self.session is not None:
            self.session.reset()
        for side in SIDES:
            self.transcript[side] = Text()
            self.answers[side] = ""
            self._show_side(side)
