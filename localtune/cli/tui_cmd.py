"""`localtune tui` (and bare `localtune`): open the terminal UI.

localtune/ never imports the `tui` package: the UI registers itself as the "tui" entry point of
the `localtune.frontends` group (pyproject.toml), and this command loads whatever is registered."""

from __future__ import annotations

from localtune.runs.layout import DEFAULT_ROOT

SCREENS = ("train", "runs", "datasets", "chat", "models", "rate")
FRONTENDS = "localtune.frontends"  # entry point group the UI registers in


def register(sub) -> None:
    p = sub.add_parser("tui", help="open the terminal UI (data, train, watch, chat, compare)")
    add_tui_args(p)
    p.set_defaults(func=run)


def add_tui_args(p, default=None) -> None:
    """The UI's options; `default` = argparse.SUPPRESS on the top-level parser (bare localtune)."""
    keep = (lambda value: value) if default is None else (lambda value: default)
    p.add_argument("--runs-root", default=keep(str(DEFAULT_ROOT)), help="parent directory of run directories")
    p.add_argument("--model", default=keep(None), help="model to pre-fill in the forms (dir, .gguf or hub id)")
    p.add_argument("--screen", choices=SCREENS, default=keep("train"), help="screen to open first")
    p.add_argument("--run", metavar="RUN_DIR", default=keep(None),
                   help="follow this run (e.g. one started from the CLI)")


def run(args=None) -> int:
    """Open the app; returns its exit code. `args` may be None (bare `localtune`)."""
    from localtune.errors import LocaltuneError

    from importlib.metadata import entry_points

    found = entry_points(group=FRONTENDS, name="tui")
    if not found:
        raise LocaltuneError(f"no terminal UI is registered (entry point group {FRONTENDS!r}); "
                             "install localtune with its UI: pip install -e .")
    try:
        create_app = next(iter(found)).load()
    except ImportError as e:
        raise LocaltuneError(f"the terminal UI needs textual and textual-plotext ({e}); "
                             "pip install textual textual-plotext") from None
    app = create_app(runs_root=getattr(args, "runs_root", str(DEFAULT_ROOT)), model=getattr(args, "model", None),
                     start=getattr(args, "screen", "train"), run=getattr(args, "run", None))
    # (args: `localtune tui ...`, bare `localtune [--screen ...]`, or None)
    app.run()
    return int(app.return_code or 0)
