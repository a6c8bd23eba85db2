"""localtune's terminal UI (Textual). The engine (`localtune/`) never imports this package."""

from tui.app import LocaltuneApp, create_app

__all__ = ["LocaltuneApp", "create_app"]
