"""`localtune chat`: a streaming multi-turn REPL, one-shot --prompt, and --compare base vs tuned."""

from __future__ import annotations

import sys

from localtune.cli.sampling_flags import add_sampling_flags, sampling_overrides
from localtune.safetext import printable

HELP = """commands: /reset (forget the conversation)  /system TEXT (set the system prompt)
          /adapter on|off  /temp X  /sampling (show the settings)  /quit"""


def register(sub) -> None:
    p = sub.add_parser("chat", help="chat with a model and (optionally) a trained adapter")
    p.add_argument("--model", help="model dir, .gguf or hub id (default: the run's model, else SmolLM2)")
    p.add_argument("--adapter", metavar="RUN_DIR", help="a run directory with adapters.safetensors")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--prompt", help="answer this once and exit")
    p.add_argument("--compare", action="store_true", help="answer with base and tuned, one after the other")
    add_sampling_flags(p)
    p.set_defaults(func=run)


def model_for_adapter(model: str | None, adapter: str | None) -> str | None:
    """Default to the model the run was trained on."""
    if model or not adapter:
        return model
    from localtune.errors import RunError
    from localtune.runs import owning_run, read_run

    run = owning_run(adapter)  # the run itself, or the run of one of its checkpoints
    if run is None:
        return None  # an mlx_lm adapter directory: the default model
    info = read_run(run)
    if info.model is None and info.problem:  # never guess the base: a wrong one answers nonsense
        raise RunError(f"{info.problem}; give the base model with --model")
    return info.model


def run(args) -> int:
    from localtune.chat import ChatSession
    from localtune.errors import LocaltuneError

    if args.compare and not args.adapter:
        raise LocaltuneError("--compare needs --adapter RUN_DIR (base vs tuned)")
    overrides = sampling_overrides(args)  # a bad flag fails before the model loads
    from localtune.cli import show_notices

    session = ChatSession.open(model_for_adapter(args.model, args.adapter), args.adapter, args.system,
                               on_event=show_notices)
    sampling = session.default_sampling(**overrides)
    if args.prompt is not None:
        if args.compare:
            for name, text in session.compare(args.prompt, sampling).items():
                print(f"--- {name} ---\n{printable(text)}\n")
        else:
            _stream(session, args.prompt, sampling)
        return 0
    return repl(session, sampling, args.compare)


def _stream(session, prompt, sampling) -> None:
    for piece in session.stream(prompt, sampling):
        sys.stdout.write(printable(piece))  # a model can emit escape sequences too
        sys.stdout.flush()
    sys.stdout.write("\n")


def _with_temperature(sampling, text: str):
    """The sampling with a new temperature, or unchanged (and a message) when `text` is not one."""
    from dataclasses import replace

    from localtune.errors import LocaltuneError

    try:
        new = replace(sampling, temperature=float(text)).validate()
    except ValueError:
        print("(usage: /temp 0.7)")
        return sampling
    except LocaltuneError as e:
        print(f"({e})")
        return sampling
    print(f"(temperature {new.temperature})")
    return new


def repl(session, sampling, compare: bool) -> int:
    print(HELP)
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not line:
            continue
        if line.startswith("/"):
            cmd, _, rest = line.partition(" ")
            if cmd in ("/quit", "/exit"):
                return 0
            if cmd == "/reset":
                session.reset()
                print("(conversation cleared)")
            elif cmd == "/system":
                session.system = rest or None
                print(f"(system prompt: {session.system!r})")
            elif cmd == "/adapter" and rest in ("on", "off"):
                if not session.has_adapter:
                    print("(no adapter loaded: use --adapter RUN_DIR)")
                else:
                    session.set_adapter(rest == "on")
                    print(f"(adapter {rest})")
            elif cmd == "/temp":
                sampling = _with_temperature(sampling, rest)
            elif cmd == "/sampling":
                print(f"({', '.join(f'{k}={v}' for k, v in sampling.to_dict().items())})")
            else:
                print(HELP)
            continue
        try:
            if compare:
                for name, text in session.compare(line, sampling).items():
                    print(f"[{name}] {printable(text)}")
            else:
                sys.stdout.write("bot> ")
                _stream(session, line, sampling)
        except KeyboardInterrupt:
            print("\n(stopped)")
