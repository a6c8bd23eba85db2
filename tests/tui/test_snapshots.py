"""Snapshots of every screen at 120x36, built with the CLI's app factory. Deterministic: fixed
fake runs (no clocks), paths shown relative to a fresh working directory, no spinners.
Update after an intended UI change: pytest tests/tui/test_snapshots.py --snapshot-update"""

from __future__ import annotations

import shutil

import pytest
from conftest import write_fake_run
from tui_helpers import wait_for_workers, wait_until

from textual.widgets import Input

from tui import create_app

SIZE = (120, 36)


async def steady_cursor(pilot) -> None:
    """A focused Input's cursor blinks on a timer: keep it on, so the picture never depends on when
    the snapshot is taken (a fresh-clone CI run caught it mid-blink)."""
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    await pilot.pause()


@pytest.fixture
def runs(tui_env):
    write_fake_run(tui_env / "adapters", "sft-demo")
    write_fake_run(tui_env / "adapters", "dpo-demo", kind="dpo", status="failed", offset=0.3,
                   error="non-finite loss at step 20")
    return tui_env


def test_train_screen_following_a_run(snap_compare, runs):
    app = create_app(run="adapters/sft-demo")

    async def attached(pilot):
        await wait_until(pilot, lambda: app.screen.run_status == "finished", what="attach")
        await pilot.pause()
        await steady_cursor(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=attached)


def test_runs_screen_comparing(snap_compare, runs):
    app = create_app(start="runs")

    async def compare(pilot):
        app.screen.query_one("#runs-table").focus()
        await pilot.press("home", "m", "down")
        await pilot.pause()
        app.clear_notifications()
        await pilot.pause()
        await steady_cursor(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=compare)


def test_datasets_screen_with_a_file(snap_compare, tui_env):
    app = create_app(start="datasets")

    async def open_file(pilot):
        app.screen.query_one("#ds-path").value = "data/bad_rows.jsonl"
        await pilot.press("ctrl+o")
        await wait_for_workers(app)
        await wait_until(pilot, lambda: app.screen.loaded is not None, what="dataset")
        await pilot.pause()
        await steady_cursor(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=open_file)


def test_chat_screen_ab_mode(snap_compare, runs):
    app = create_app(start="chat")

    async def ab(pilot):
        await pilot.press("ctrl+b")
        await pilot.pause()
        await steady_cursor(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=ab)


def test_models_screen(snap_compare, tui_env, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tui_env / "models" / "tiny-llama")
    app = create_app(start="models")

    async def listed(pilot):
        await wait_for_workers(app)
        await wait_until(pilot, lambda: app.screen.query_one("#models-table").row_count == 1, what="list")
        await pilot.pause()
        await steady_cursor(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=listed)
