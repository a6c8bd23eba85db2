"""`localtune tui` wiring, and the engine staying free of textual/tui."""

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


def test_engine_and_cli_module_do_not_import_textual():
    import subprocess
    import sys

    code = ("import sys, localtune, localtune.cli, localtune.cli.tui_cmd, localtune.runs, localtune.chat; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'tui')]; print(bad); "
            "sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_engine_or_cli_source_imports_the_ui():
    import re
    from pathlib import Path

    import localtune

    pattern = re.compile(r"^\s*(from|import)\s+(tui|textual)\b", re.M)
    bad = [str(p) for p in Path(localtune.__file__).parent.rglob("*.py") if pattern.search(p.read_text())]
    assert not bad, bad


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
