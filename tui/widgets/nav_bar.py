"""The top line of every screen: the five screens with their F-keys (the current one marked),
clickable, and where help is. It replaces the footer's F-key entries, which do not fit 80 columns
next to a screen's own keys."""

from __future__ import annotations

from textual.widgets import Static

SCREEN_KEYS = (("train", "F1", "Train"), ("runs", "F2", "Runs"), ("datasets", "F3", "Data"),
               ("chat", "F4", "Chat"), ("models", "F5", "Models"))


class NavBar(Static):
    def on_mount(self) -> None:
        current = next((name for name, cls in self.app.MODES.items() if isinstance(self.screen, cls)), None)
        parts = ["[b reverse] localtune [/]"]
        for name, key, label in SCREEN_KEYS:
            entry = f"{key} {label}"
            if name == current:
                entry = f"[b reverse] {entry} [/]"
            else:
                entry = f" [@click=app.switch_mode('{name}')]{entry}[/] "
            parts.append(entry)
        parts.append(" [dim]? help · ^q quit[/]")
        self.update("".join(parts))
