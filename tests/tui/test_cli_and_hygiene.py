"""`localtune tui` wiring (the engine staying free of textual/tui: tests/unit/test_import_hygiene.py)."""

from __future__ import annotations


def test_cli_command_opens_the_app_with_its_options(monkeypatch):
    import argparse

    from localtune.cli import tui_cmd
    from tui.app import LocaltuneApp

    opened = {}
    monkeypatch.setattr(LocaltuneApp, "run", lambda self: opened.update(mode=self.start_mode, **self.settings))
    parser = argparse.ArgumentParser()
    tui_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["tui", "--screen", "runs", "--runs-root", "elsewhere"])
    assert args.func(args) == 0
    assert opened["mode"] == "runs" and opened["runs_root"] == "elsewhere"
    assert tui_cmd.run(None) == 0 and opened["mode"] == "train"  # bare `localtune`


def test_localtune_screen_option_opens_that_screen(monkeypatch):
    import sys

    from localtune.cli import main
    from tui.app import LocaltuneApp

    opened = {}
    monkeypatch.setattr(LocaltuneApp, "run", lambda self: opened.update(mode=self.start_mode, **self.settings))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["--screen", "runs", "--runs-root", "elsewhere"]) == 0
    assert opened["mode"] == "runs" and opened["runs_root"] == "elsewhere"
