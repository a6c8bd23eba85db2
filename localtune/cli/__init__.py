"""The command line: argument parsing and printing only; every command calls the engine."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from localtune.errors import LocaltuneError


def show_notices(event: dict) -> None:
    """on_event for commands with nothing to show but notices and warnings: `note: ...` and
    `warning: ...` lines on stderr, made safe for the terminal (a message may quote a path or a row)."""
    from localtune.safetext import printable

    label = {"notice": "note", "warning": "warning"}.get(event.get("event"))
    if label:
        print(f"{label}: {printable(str(event.get('message', '')))}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    from localtune.cli import (chat_cmd, data_cmd, demo_cmd, doctor_cmd, eval_cmd, export_cmd, feedback_cmd,
                               models_cmd, plan_cmd, reward_cmd, runs_cmd, train_cmd, tui_cmd)

    parser = argparse.ArgumentParser(
        prog="localtune",
        description="Instruction-tune a language model on this machine (LoRA SFT, DPO, reward models) with MLX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = (train_cmd, reward_cmd, data_cmd, models_cmd, chat_cmd, eval_cmd, feedback_cmd, export_cmd, runs_cmd,
                plan_cmd,
                doctor_cmd, demo_cmd, tui_cmd)
    for module in commands:
        module.register(sub)
    # `localtune --screen runs` = `localtune tui --screen runs` (bare localtune opens the UI);
    # SUPPRESS keeps these out of the namespace unless given, so no subcommand sees them.
    tui_cmd.add_tui_args(parser, default=argparse.SUPPRESS)
    return parser


class Terminated(BaseException):
    """SIGTERM outside training (which answers it by checkpointing): unwind so temp outputs go."""


def _terminate(signum, frame):
    raise Terminated


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# Exit statuses scripts can tell apart (README, "What localtune guarantees").
EXIT_ERROR = 2  # a clear one-line error: bad input, full disk, damaged file, refused output
EXIT_SIGINT = 130  # stopped by Ctrl-C (a training run checkpoints first)
EXIT_SIGPIPE = 141  # output closed early (`| head`): quiet, like other Unix tools
EXIT_SIGTERM = 143  # stopped by SIGTERM (a training run checkpoints first)


def main(argv: list[str] | None = None) -> int:
    from localtune.ioerrors import user_error
    from localtune.safetext import printable

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except BrokenPipeError:  # --help into `| head`
        _quiet_stdout()
        return EXIT_SIGPIPE
    if not getattr(args, "func", None):  # bare `localtune`: the terminal UI, on a terminal
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_help()
            return 0
        from localtune.cli import tui_cmd

        return tui_cmd.run(args)
    if args.command == "tui" and not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("error: the terminal UI needs a terminal (its input and output are not one); use the "
              "other commands in scripts", file=sys.stderr)
        return EXIT_ERROR
    signal.signal(signal.SIGTERM, _terminate)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here, not at exit
        return status
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_SIGPIPE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_SIGTERM
    except (LocaltuneError, OSError, RuntimeError) as e:
        error = user_error(e)
        if error is None:
            raise  # not a user's problem but a bug: show where
        print(f"error: {printable(str(error))}", file=sys.stderr)
        return EXIT_ERROR
