"""Chat screen with the tiny model and a real (tiny) adapter: streaming, A/B, stop."""

from __future__ import annotations

import shutil

import pytest
from tui_helpers import paste_into, type_into, wait_for_workers, wait_until

from tui import create_app

pytestmark = pytest.mark.asyncio


async def _ready_chat(pilot, app, tui_env, tiny_model_dir, trained_run):
    shutil.copytree(trained_run, tui_env / "adapters" / "sft-tiny")
    await pilot.press("f2", "f4")  # leave and come back: the adapter list refreshes on resume
    screen = app.screen
    select = screen.query_one("#chat-adapter")
    await paste_into(pilot, "#chat-model", str(tiny_model_dir))
    await type_into(pilot, "#chat-temp", "1.0")
    await type_into(pilot, "#chat-max", "12")
    select.focus()
    await pilot.press("enter", "down", "enter")  # open the list, pick the run's adapter: it loads
    assert select.value == "adapters/sft-tiny"
    await wait_until(pilot, lambda: screen.session is not None and not screen.loading, what="the model to load")
    assert screen.session.has_adapter and screen.session.adapter_path == "adapters/sft-tiny"
    return screen


async def ask(pilot, screen, prompt: str) -> None:
    await type_into(pilot, "#chat-prompt", prompt)
    await pilot.press("enter")
    await wait_until(pilot, lambda: not screen.generating, what=f"the answer to {prompt!r}")


async def test_chat_streams_an_answer(tui_env, tiny_model_dir, trained_run, monkeypatch):
    from tui.screens.chat import ChatScreen

    pieces = []  # what the screen received, message by message
    shown = ChatScreen.on_chat_piece

    def counting(self, msg):
        pieces.append(msg.text)
        shown(self, msg)

    monkeypatch.setattr(ChatScreen, "on_chat_piece", counting)
    app = create_app(start="chat")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _ready_chat(pilot, app, tui_env, tiny_model_dir, trained_run)
        await ask(pilot, screen, "hello")
        assert len(pieces) > 1  # streamed piece by piece, not at once
        answer = screen.answers["tuned"]
        assert "".join(pieces) == answer
        assert answer  # (the random tiny model mostly answers in newlines: no visible-text check)
        shown = screen.transcript["tuned"].plain
        assert shown.startswith("\nyou: hello\nsft-tiny: ") and shown.endswith(answer)  # who answered
        assert "you: hello" in str(screen.query_one("#answer-tuned").render())
        assert len(screen.session.history) == 2  # multi-turn: the exchange is remembered
        assert not screen.query_one("#pane-base").display


async def test_ab_mode_shows_two_answers(tui_env, tiny_model_dir, trained_run):
    app = create_app(start="chat")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _ready_chat(pilot, app, tui_env, tiny_model_dir, trained_run)
        await pilot.press("ctrl+b")
        assert screen.ab and screen.query_one("#pane-base").display
        await type_into(pilot, "#chat-prompt", "hi")
        await pilot.press("enter")
        await wait_until(pilot, lambda: not screen.generating, what="both answers")
        await wait_for_workers(app)
        assert screen.answers["base"] and screen.answers["tuned"]
        for side, who in (("base", "base"), ("tuned", "sft-tiny")):
            assert f"you: hi\n{who}: " in str(screen.query_one(f"#answer-{side}").render())
        assert screen.session.history == []  # comparisons leave the conversation alone
        assert screen.session.has_adapter


async def test_send_without_model_is_refused_visibly(tui_env):
    app = create_app(start="chat")
    async with app.run_test(size=(120, 36)) as pilot:
        await type_into(pilot, "#chat-prompt", "hi")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.query_one("#error").display
        assert "load a model first" in str(app.screen.query_one("#error").render())


async def test_picking_another_adapter_takes_effect_at_once(tui_env, tiny_model_dir, trained_run):
    app = create_app(start="chat")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _ready_chat(pilot, app, tui_env, tiny_model_dir, trained_run)
        await ask(pilot, screen, "hello")
        shutil.copytree(trained_run, tui_env / "adapters" / "other-run")
        await pilot.press("f2", "f4")  # the list refreshes on resume; the loaded adapter stays
        assert screen.session.adapter_path == "adapters/sft-tiny" and not screen.loading
        select = screen.query_one("#chat-adapter")
        select.value = "adapters/other-run"  # no ctrl+l
        await wait_until(pilot, lambda: screen.session.adapter_path == "adapters/other-run" and not screen.loading,
                         timeout=60, what="the new adapter to load")
        assert len(screen.session.history) == 2  # the conversation went on
        await ask(pilot, screen, "again")
        shown = screen.transcript["tuned"].plain
        assert "now answering" in shown and "you: again\nother-run: " in shown
        assert "other-run" in str(screen.query_one("#chat-status").render())


async def test_the_chat_follows_new_text(tui_env):
    from tui.messages import ChatPiece

    app = create_app(start="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        scroll = screen.query_one("#scroll-tuned")
        for i in range(40):
            screen.post_message(ChatPiece("tuned", f"line {i} of a long answer\n"))
        # the scroll follows after the next refresh (when is up to the machine's load)
        await wait_until(pilot, lambda: scroll.max_scroll_y > 0 and scroll.scroll_y == scroll.max_scroll_y,
                         timeout=10, what="the newest line in view")
