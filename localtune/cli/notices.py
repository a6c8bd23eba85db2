"""Warnings the engine reports as {"event": "warning", "message": ...}: one line on stderr, made
safe for the terminal (the message may quote a path or a row)."""

from __future__ import annotations

import sys


def show_warning(e: dict) -> None:
    from localtune.safetext import printable

    if e.get("event") == "warning":
        print(f"warning: {printable(str(e.get('message', '')))}", file=sys.stderr, flush=True)
