"""SFT -> DPO -> eval from the Runs screen in a few keys, and a list that refreshes itself and
keeps the selected run selected."""

from __future__ import annotations

import shutil
import sys

import pytest
from conftest import write_fake_run
from textual.widgets import DataTable
from tui_helpers import wait_until

from localtune.runs import RunDir
from tui import create_app
from tui.widgets.train_form import TrainForm

pytestmark = pytest.mark.asyncio


def finished_run(root, name, **kw):
    """A fake finished run with a (placeholder) saved adapter: what DPO/eval/clone start from."""
    run = write_fake_run(root, name, **kw)
    RunDir(run).adapter_path.write_bytes(b"")
    return run


async def runs_screen(pilot, app, n: int):
    table = app.screen.query_one(DataTable)
    await wait_until(pilot, lambda: table.row_count == n, what=f"{n} runs listed")
    table.focus()
    return app.screen, table


async def press_for(pilot, app, key: str, screen_name: str):
    """On the Runs screen, press `key` and wait until it shows `screen_name`; returns it."""
    await runs_screen(pilot, app, 1)
    await pilot.press(key)
    await wait_until(pilot, lambda: type(app.screen).__name__ == screen_name, what=screen_name)
    return app.screen


async def select(pilot, screen, table, name):
    row = [r["name"] for r in screen.runs].index(name)
    table.move_cursor(row=row)
    await wait_until(pilot, lambda: screen.selected and screen.selected["name"] == name, what=f"{name} selected")


async def test_dpo_from_a_finished_run(tui_env):
    run = finished_run(tui_env / "adapters", "sft-done")
    app = create_app(start="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await press_for(pilot, app, "p", "TrainScreen")
        form = screen.query_one(TrainForm)
        await wait_until(pilot, lambda: form.kind == "dpo", what="the DPO form")
        values = form.all_values()
        assert values["adapter"] == "adapters/sft-done" and values["model"] == "models/tiny"
        assert "iters" not in values  # nothing else carried over from the SFT run
        assert app.focused is screen.query_one("#f-data")  # next: pick the preference data
        assert run.exists()


async def test_clone_fills_the_form_with_the_run_config(tui_env):
    finished_run(tui_env / "adapters", "dpo-done", kind="dpo")
    app = create_app(start="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        form = (await press_for(pilot, app, "n", "TrainScreen")).query_one(TrainForm)
        await wait_until(pilot, lambda: form.kind == "dpo", what="the cloned kind")
        values = form.all_values()
        assert values == {"model": "models/tiny", "data": "data/train.jsonl", "iters": 20, "lr": 1e-4}
        assert form.run_name == ""


async def test_evaluate_runs_the_command_and_shows_its_output(tui_env):
    finished_run(tui_env / "adapters", "sft-done")
    app = create_app(start="runs")
    # the launcher is generic: a fake `localtune eval` that prints what it was given
    app.settings["eval_command"] = [sys.executable, "-c", "import sys; print('evaluated', sys.argv[1])", "{run}"]
    async with app.run_test(size=(120, 36)) as pilot:
        await press_for(pilot, app, "v", "OutputDialog")
        assert "evaluated adapters/sft-done" in str(app.screen.query_one("#output-text").render())
        assert "done" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "RunsScreen"


async def test_actions_need_a_saved_adapter(tui_env):
    write_fake_run(tui_env / "adapters", "no-adapter", status="failed", error="boom")
    app = create_app(start="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        screen, _ = await runs_screen(pilot, app, 1)
        await pilot.pause()
        for action in ("chat", "dpo", "evaluate", "export"):
            assert not screen.check_action(action, ()), action
            assert screen.query_one(f"#{action}").disabled
        assert screen.check_action("resume", ()) and screen.check_action("clone", ())


async def test_the_list_refreshes_itself_and_keeps_the_selection(tui_env):
    root = tui_env / "adapters"
    finished_run(root, "a")
    b = finished_run(root, "b")
    RunDir(b).update(started=500.0)  # older than a: listed second
    app = create_app(start="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        screen, table = await runs_screen(pilot, app, 2)
        await select(pilot, screen, table, "b")
        newest = finished_run(root, "c")  # e.g. started from the CLI: listed first, above b
        RunDir(newest).update(started=5000.0)
        await wait_until(pilot, lambda: table.row_count == 3, timeout=10, what="the timer's refresh")
        assert screen.selected["name"] == "b" and table.cursor_row == 2  # still b, now third
        await pilot.press("g")
        await pilot.pause()
        assert screen.selected["name"] == "b"
        # delete a (the middle row): b stays selected, not the top row
        await select(pilot, screen, table, "a")
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await wait_until(pilot, lambda: table.row_count == 2, what="the deletion")
        assert screen.selected["name"] == "b" and table.cursor_row == 1


async def test_chat_with_a_run_loads_its_adapter_at_once(tui_env, trained_run):
    shutil.copytree(trained_run, tui_env / "adapters" / "sft-tiny")
    app = create_app(start="runs")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await press_for(pilot, app, "c", "ChatScreen")
        await wait_until(pilot, lambda: screen.session is not None and not screen.loading, timeout=60,
                         what="the model and adapter to load")
        assert screen.session.adapter_path == "adapters/sft-tiny" and screen.session.has_adapter
        assert "sft-tiny" in str(screen.query_one("#chat-status").render())
