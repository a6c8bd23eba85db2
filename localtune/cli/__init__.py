"""The command line: argument parsing and printing only; every command calls the engine."""

from __future__ import annotations

import argparse
import sys

from localtune.errors import LocaltuneError


def show_notices(event: dict) -> None:
    """on_event for commands with nothing to show but notices: `note: ...` lines on stderr."""
    if event.get("event") == "notice":
        print(f"note: {event['message']}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from localtune.cli import (chat_cmd, data_cmd, demo_cmd, doctor_cmd, eval_cmd, export_cmd, feedback_cmd,
                               models_cmd, plan_cmd, runs_cmd, train_cmd, tui_cmd)

    parser = argparse.ArgumentParser(
        prog="localtune",
        description="Instruction-tune a language model on this machine (LoRA SFT, DPO) with MLX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = (train_cmd, data_cmd, models_cmd, chat_cmd, eval_cmd, feedback_cmd, export_cmd, runs_cmd, plan_cmd,
                doctor_cmd, demo_cmd, tui_cmd)
    for module in commands:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):  # bare `localtune`: the terminal UI, on a terminal
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_help()
            return 0
        from localtune.cli import tui_cmd

        return tui_cmd.run(None)
    try:
        return int(args.func(args) or 0)
    except LocaltuneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
