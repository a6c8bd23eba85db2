"""Rate screen: a session's answers side by side (stacked at 80x24), the rating keys writing the
same labels log as `localtune feedback rate`, edit in a text area, undo, reopen where it stopped,
and "sample and rate answers of this run" from the Runs screen."""

from __future__ import annotations

import json

import pytest
from feedback_helpers import make_session
from tui_helpers import paste_into, wait_for_workers, wait_until

from localtune.feedback import FeedbackSession, replay
from tui import create_app

async def _open(pilot, app, path):
    await pilot.press("f6")
    await paste_into(pilot, "#rate-path", str(path))
    await pilot.press("enter")
    await wait_until(pilot, lambda: app.screen.rater is not None, what="the session to open")
    await pilot.pause()
    return app.screen


def _labels(path):
    return replay(FeedbackSession.open(path).records()).human


@pytest.mark.asyncio
async def test_rate_keys_write_the_labels_log_and_reopen_continues(tui_env):
    s = make_session(tui_env / "feedback" / "s1", prompts=4, k=2)
    app = create_app(start="train")
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(pilot, app, s.path)
        assert "0/4 rated" in str(screen.query_one("#rate-status").render())
        assert "answer 0.1" in str(screen.query_one("#rate-answer-2 Static").render())
        panes = [p for p in screen.query(".answer") if p.display]
        assert len(panes) == 2 and panes[0].region.y == panes[1].region.y  # side by side
        assert panes[0].region.x < panes[1].region.x
        await pilot.press("2")
        await pilot.pause()
        assert _labels(s.path)["p0001"]["order"] == [[1], [0]]  # on disk as soon as given
        assert "answer 1.0" in str(screen.query_one("#rate-answer-1 Static").render())
        await pilot.press("t", "s")
        await pilot.pause()
        assert "3/4 rated" in str(screen.query_one("#rate-status").render())
        await pilot.press("u")
        await pilot.pause()
        assert set(_labels(s.path)) == {"p0001", "p0002"}
        assert screen.rater.item.id == "p0003"
    # a new app on the same session continues at the first prompt without a label; the lock was released
    app = create_app(start="rate")
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(pilot, app, s.path)
        assert screen.rater.item.id == "p0003" and "2/4 rated" in str(screen.query_one("#rate-status").render())


@pytest.mark.asyncio
async def test_best_then_worst_and_an_edit(tui_env):
    s = make_session(tui_env / "feedback" / "s2", prompts=3, k=3)
    app = create_app(start="rate")
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open(pilot, app, s.path)
        await pilot.press("3")
        await pilot.pause()
        assert "worst?" in str(screen.query_one("#rate-hint").render())
        assert screen.query_one("#rate-answer-3").has_class("best")
        await pilot.press("1")
        await pilot.pause()
        assert _labels(s.path)["p0001"]["order"] == [[2], [1], [0]]
        await pilot.press("e", "2")
        await pilot.pause()
        editor = screen.query_one("#rate-edit")
        assert editor.display and editor.has_focus and editor.text == "answer 1.1"
        editor.text = "a much better answer"
        await pilot.press("ctrl+s")
        await pilot.pause()
        label = _labels(s.path)["p0002"]
        assert label["type"] == "edit" and label["candidate"] == 1 and label["text"] == "a much better answer"
        assert not screen.query_one("#rate-edit-box").display
        await pilot.press("e", "1", "escape")  # an edit cancelled writes nothing
        await pilot.pause()
        assert "p0003" not in _labels(s.path) and screen.rater.step == "best"


@pytest.mark.asyncio
async def test_narrow_terminal_stacks_the_answers(tui_env):
    s = make_session(tui_env / "feedback" / "s3", prompts=2, k=3, system="Be brief.")
    app = create_app(start="rate")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app, s.path)
        assert screen.has_class("narrow")
        panes = [p for p in screen.query(".answer") if p.display]
        assert len(panes) == 3 and panes[0].region.x == panes[1].region.x and panes[1].region.y > panes[0].region.y
        assert panes[0].region.width >= 70  # full width, readable
        assert "system: Be brief." in str(screen.query_one("#rate-prompt").render())
        await pilot.press("1", "3")
        await pilot.pause()
        assert _labels(s.path)["p0001"]["order"] == [[0], [1], [2]]


@pytest.mark.asyncio
async def test_a_folder_that_is_not_a_session_is_refused_visibly(tui_env):
    (tui_env / "notasession").mkdir()
    app = create_app(start="rate")
    async with app.run_test(size=(120, 36)) as pilot:
        await paste_into(pilot, "#rate-path", str(tui_env / "notasession"))
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.query_one("#error").display
        assert "not a feedback session" in str(app.screen.query_one("#error").render())


@pytest.mark.asyncio
async def test_rate_answers_of_a_run_from_the_runs_screen(tui_env, tiny_untied_model_dir):
    """f on a run: its model and adapter answer its validation prompts into RUN/feedback/<time>/,
    then the Rate screen opens that session."""
    from localtune.lora import LoraSpec, attach_lora, save_adapter
    from localtune.models import load_model

    run = tui_env / "adapters" / "sft-u"
    run.mkdir()
    valid = tui_env / "data" / "valid.jsonl"
    valid.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"hi {i}"},
                                                      {"role": "assistant", "content": "yo"}]}) + "\n"
                             for i in range(3)))
    model, _ = load_model(tiny_untied_model_dir)
    attach_lora(model, LoraSpec(rank=2, layers=-1))
    save_adapter(model, run, LoraSpec(rank=2, layers=-1))
    (run / "run.json").write_text(json.dumps({
        "kind": "sft", "status": "finished", "pid": 0, "record_version": 2, "model_path": str(tiny_untied_model_dir),
        "config": {"model": str(tiny_untied_model_dir), "data": str(valid), "valid": str(valid),
                   "max_tokens": 8}}))
    app = create_app(start="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.screen.selected is not None, what="the run to be listed")
        await pilot.press("f")
        await wait_until(pilot, lambda: app.current_mode == "rate", what="the Rate screen")
        screen = app.screen
        await wait_until(pilot, lambda: screen.rater is not None, timeout=240, what="the run's answers")
        await wait_for_workers(app)
        session = screen.rater.session
        assert session.path.resolve().parent == (run / "feedback").resolve()
        assert session.manifest["adapter"] == str(run.resolve()) and len(session.items) == 3
        assert screen.rater.item.messages[-1]["content"] == "hi 0"


def test_rate_screen_snapshot_80x24(snap_compare, tui_env):
    """The stacked layout at 80x24 with the best of three picked (its border highlighted)."""
    from textual.widgets import Input

    make_session(tui_env / "feedback" / "snap", prompts=2, k=3, system="Answer briefly.")
    app = create_app(start="rate")

    async def rated(pilot):
        app.settings["rate_session"] = "feedback/snap"
        app.screen.on_screen_resume()
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        app.clear_notifications()
        for widget in app.screen.query(Input):
            widget.cursor_blink = False
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=rated)
