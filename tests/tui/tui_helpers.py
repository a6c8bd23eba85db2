"""Helpers shared by the TUI tests (imported as a plain module: tests/tui is on sys.path)."""

from __future__ import annotations

import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
JOB_GROUPS = {"dataset", "split", "chat-load", "chat-gen", "models-list", "model-job", "export", "plan",
              "rate-sample"}


async def wait_for_workers(app) -> None:
    """Wait for the app's jobs to end (not widgets' own endless loaders, like DirectoryTree's)."""
    ours = [w for w in app.workers if w.group in JOB_GROUPS]
    for worker in ours:
        try:
            await worker.wait()
        except Exception:  # a failed job: the screen shows it; tests assert on that
            pass


async def wait_until(pilot, condition, timeout: float = 30.0, what: str = "condition") -> None:
    """Let the app run until condition() is true; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.1)


async def type_into(pilot, selector: str, text: str) -> None:
    """Focus an Input by clicking it, clear it and type `text` with key presses."""
    widget = pilot.app.screen.query_one(selector)
    widget.focus()
    await pilot.pause()
    widget.value = ""
    await pilot.press(*list(text))


async def paste_into(pilot, selector: str, text: str) -> None:
    """Focus an Input and paste `text` into it, as a terminal paste arrives (one event, not one
    key per character: long paths typed key by key cost ~0.1 s per key on 2 cores)."""
    from textual import events

    widget = pilot.app.screen.query_one(selector)
    widget.focus()
    widget.value = ""
    await pilot.pause()
    widget.post_message(events.Paste(text))
    await pilot.pause()
    assert widget.value == text, f"{selector}: pasted {text!r}, holds {widget.value!r}"
