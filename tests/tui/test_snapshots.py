"""Snapshots of every screen at 80x24 (panes stacked) and 200x60, built with the CLI's app
factory. Deterministic: fixed fake runs (no clocks), paths shown relative to a fresh working
directory, no spinners, no blinking cursors, no notifications.
Update after an intended UI change: pytest tests/tui/test_snapshots.py --snapshot-update"""

from __future__ import annotations

import shutil

import pytest
from conftest import write_fake_run
from textual.widgets import Input
from tui_helpers import wait_for_workers, wait_until

from tui import create_app

SIZES = pytest.mark.parametrize("size", [(80, 24), (200, 60)], ids=["80x24", "200x60"])


async def steady(pilot) -> None:
    """A focused Input's cursor blinks on a timer: keep it on, so the picture never depends on when
    the snapshot is taken (a fresh-clone CI run caught it mid-blink). Toasts go too."""
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    pilot.app.clear_notifications()
    await pilot.pause()


@pytest.fixture
def runs(tui_env):
    write_fake_run(tui_env / "adapters", "sft-demo")
    write_fake_run(tui_env / "adapters", "dpo-demo", kind="dpo", status="failed", offset=0.3,
                   error="non-finite loss at step 20")
    return tui_env


@SIZES
def test_train_screen_following_a_run(snap_compare, runs, size):
    app = create_app(run="adapters/dpo-demo")

    async def attached(pilot):
        await wait_until(pilot, lambda: app.screen.run_status == "failed", what="attach")
        await pilot.pause()
        await steady(pilot)

    assert snap_compare(app, terminal_size=size, run_before=attached)


@SIZES
def test_runs_screen_comparing(snap_compare, runs, size):
    app = create_app(start="runs")

    async def compare(pilot):
        await wait_until(pilot, lambda: app.screen.query_one("#runs-table").row_count == 2, what="runs")
        app.screen.query_one("#runs-table").focus()
        await pilot.press("home", "m", "down")
        await pilot.pause()
        await steady(pilot)

    assert snap_compare(app, terminal_size=size, run_before=compare)


@SIZES
def test_datasets_screen_with_a_file(snap_compare, tui_env, size):
    app = create_app(start="datasets")

    async def open_file(pilot):
        app.screen.query_one("#ds-path").value = "data/bad_rows.jsonl"
        await pilot.press("ctrl+o")
        await wait_for_workers(app)
        await wait_until(pilot, lambda: app.screen.loaded is not None, what="dataset")
        await pilot.pause()
        await steady(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_file)


@SIZES
def test_chat_screen_ab_mode(snap_compare, runs, size):
    app = create_app(start="chat")

    async def ab(pilot):
        await pilot.press("ctrl+b")
        await pilot.pause()
        await steady(pilot)

    assert snap_compare(app, terminal_size=size, run_before=ab)


@SIZES
def test_models_screen(snap_compare, tui_env, tiny_model_dir, size):
    shutil.copytree(tiny_model_dir, tui_env / "models" / "tiny-llama")
    app = create_app(start="models")

    async def listed(pilot):
        await wait_for_workers(app)
        await wait_until(pilot, lambda: app.screen.query_one("#models-table").row_count == 1, what="list")
        await pilot.pause()
        await steady(pilot)

    assert snap_compare(app, terminal_size=size, run_before=listed)


def test_help_screen_at_80x24(snap_compare, runs):
    app = create_app(start="runs")

    async def helped(pilot):
        await wait_until(pilot, lambda: app.screen.query_one("#runs-table").row_count == 2, what="runs")
        app.screen.query_one("#runs-table").focus()
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what="help")
        await steady(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=helped)


def test_train_form_in_grpo_mode_at_80x24(snap_compare, tui_env):
    app = create_app(runs_root="adapters")

    async def grpo(pilot):
        form = app.screen.query_one("#train-form")
        form.set_kind("grpo")
        form.set_value("data", "data/prompts.jsonl")
        form.set_value("reward", ["ifeval", "length:20-120:0.5"])
        await pilot.pause()
        app.screen.query_one("#f-reward").focus()  # scrolled into view with the fields around it
        await pilot.pause()
        await steady(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=grpo)
