"""`localtune train sft|dpo|reward`: flags layered over a YAML config over built-in defaults."""

from __future__ import annotations

import argparse
import signal
from dataclasses import MISSING, fields

from localtune.cli.progress import TrainingDisplay

# Flags users script against have fixed spellings: the field name with dashes.
NOT_FLAGS = {"report_every"}  # YAML-only knobs


def add_config_flags(parser: argparse.ArgumentParser, cls, skip=(), helps: dict | None = None) -> None:
    """One flag per config field; `skip`: fields a mode does not offer, `helps`: a mode's own
    wording of a shared field's help."""
    for f in fields(cls):
        if f.name in NOT_FLAGS or f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = (helps or {}).get(f.name, f.metadata.get("help", ""))
        default = f.default if f.default is not MISSING else None
        if default is not None and not isinstance(default, tuple):
            help_text += f" (default: {default})"
        kw = {"default": None, "help": help_text, "dest": f.name}
        t = f.type if isinstance(f.type, str) else str(f.type)
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if "nargs" in f.metadata:
            kw["nargs"] = f.metadata["nargs"]
        if f.metadata.get("append"):  # a flag given once per value: --reward a --reward b
            kw["action"] = "append"
        if t.startswith("int") or isinstance(default, int):
            kw["type"] = int
        elif t.startswith("float") or isinstance(default, float):
            kw["type"] = float
        parser.add_argument(flag, **kw)


def register(sub) -> None:
    from localtune.config import TrainConfig

    train = sub.add_parser("train", help="train an adapter (sft, dpo, grpo) or a reward model (reward)")
    kinds = train.add_subparsers(dest="kind", metavar="KIND", required=True)
    sft = kinds.add_parser("sft", help="supervised fine-tuning with LoRA/QLoRA/DoRA")
    _common(sft)
    add_config_flags(sft, TrainConfig)
    sft.set_defaults(func=run_sft)
    from localtune.cli import dpo_flags, grpo_flags, reward_flags

    dpo_flags.register(kinds, _common)
    grpo_flags.register(kinds, _common)
    reward_flags.register(kinds, _common)


def _common(p) -> None:
    p.add_argument("--config", help="YAML file of options (flags given here override it)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--allow-changed-data", action="store_true",
                   help="with --resume: go on although a data file changed since the run started")


class StopFlag:
    """First Ctrl-C (or SIGTERM): ask the loop to checkpoint and stop. Second Ctrl-C: abort."""

    def __init__(self):
        self.requested = False
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.requested

    def exit_status(self) -> int:
        """128 + the signal that stopped the run (130 Ctrl-C, 143 SIGTERM), the shell's convention."""
        return 128 + (self.signum or signal.SIGINT)

    def watch_output(self, display) -> None:
        """Output piped into a command that exits early (`| head`): stop like a SIGPIPE would,
        but checkpointing first, then exit quietly with 141 like other Unix tools."""
        def closed():
            from localtune.cli import _quiet_stdout

            _quiet_stdout()
            self.requested = True
            self.signum = self.signum or signal.SIGPIPE

        display.console.on_broken_pipe = closed

    def install(self):
        def handler(signum, frame):
            if self.requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.requested = True
            self.signum = self.signum or signum

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        return self


def overrides_from(args, cls) -> dict:
    return {f.name: getattr(args, f.name, None) for f in fields(cls) if getattr(args, f.name, None) is not None}


CHAT_HINT = "chat with it: localtune chat --adapter {run}"


def execute(args, cls, task_factory, hint: str = CHAT_HINT, data_flag: str = "--data") -> int:
    from localtune.config import build_config
    from localtune.errors import LocaltuneError
    from localtune.train.session import run_training

    overrides = overrides_from(args, cls)
    if args.resume:
        cfg = None
    else:
        cfg = build_config(args.config, overrides, cls=cls)
        if not cfg.data:
            raise LocaltuneError(f"no training data: give {data_flag} FILE (or data: in --config)")
    from localtune.train import distributed

    stop = StopFlag().install()
    ended = {}

    def note_end(e: dict) -> None:
        if e.get("event") == "done":
            ended["status"] = e.get("status")

    common = dict(resume=args.resume, should_stop=stop, overrides=overrides, cfg_cls=cls,
                  allow_changed_data=args.allow_changed_data)
    if not distributed.is_main():  # data parallel: rank 0 alone shows progress and the result
        run_training(cfg, task_factory, on_event=note_end, **common)
        return stop.exit_status() if ended.get("status") == "stopped" else 0
    with TrainingDisplay() as show:
        stop.watch_output(show)
        run = run_training(cfg, task_factory, on_event=lambda e: (note_end(e), show(e)), **common)
    print(f"adapter: {run}")
    if ended.get("status") == "stopped":  # a stop is not a finish: scripts must be able to tell
        print(f"go on with: localtune train {args.kind} --resume {run}")
        return stop.exit_status()
    print(hint.format(run=run))
    return 0


def run_sft(args) -> int:
    from localtune.config import TrainConfig
    from localtune.train.sft import sft_task

    return execute(args, TrainConfig, sft_task)
