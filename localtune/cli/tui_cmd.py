"""`localtune tui` (and bare `localtune`): open the terminal UI. The only engine-side file that
touches the `tui` package, and only inside the command function (the engine never imports it)."""

from __future__ import annotations

SCREENS = ("train", "runs", "datasets", "chat", "models")


def register(sub) -> None:
    p = sub.add_parser("tui", help="open the terminal UI (data, train, watch, chat, compare)")
    add_tui_args(p)
    p.set_defaults(func=run)


def add_tui_args(p) -> None:
    p.add_argument("--runs-root", default="adapters", help="parent directory of run directories")
    p.add_argument("--model", help="model to pre-fill in the forms (dir, .gguf or hub id)")
    p.add_argument("--screen", choices=SCREENS, default="train", help="screen to open first")
    p.add_argument("--run", metavar="RUN_DIR", help="follow this run (e.g. one started from the CLI)")


def run(args=None) -> int:
    """Open the app; returns its exit code. `args` may be None (bare `localtune`)."""
    from localtune.errors import LocaltuneError

    try:
        from tui import create_app
    except ImportError as e:
        raise LocaltuneError(f"the terminal UI needs textual and textual-plotext ({e}); "
                             "pip install textual textual-plotext") from None
    app = create_app(runs_root=getattr(args, "runs_root", "adapters"), model=getattr(args, "model", None),
                     start=getattr(args, "screen", "train"), run=getattr(args, "run", None))
    app.run()
    return int(app.return_code or 0)
