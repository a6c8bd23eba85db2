"""`localtune chat`: a streaming multi-turn REPL, one-shot --prompt, and --compare base vs tuned."""

from __future__ import annotations

import sys

from localtune.safetext import printable

HELP = """commands: /reset (forget the conversation)  /system TEXT (set the system prompt)
          /adapter on|off  /temp X  /quit"""


def register(sub) -> None:
    p = sub.add_parser("chat", help="chat with a model and (optionally) a trained adapter")
    p.add_argument("--model", help="model dir, .gguf or hub id (default: the run's model, else SmolLM2)")
    p.add_argument("--adapter", metavar="RUN_DIR", help="a run directory with adapters.safetensors")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--prompt", help="answer this once and exit")
    p.add_argument("--compare", action="store_true", help="answer with base and tuned, one after the other")
    p.add_argument("--temperature", "--temp", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def model_for_adapter(model: str | None, adapter: str | None) -> str | None:
    """Default to the model the run was trained on."""
    if model or not adapter:
        return model
    from localtune.errors import RunError
    from localtune.models.identity import owning_run
    from localtune.runs import RunDir

    run = owning_run(adapter)  # the run itself, or the run of one of its checkpoints
    if run is None:
        return None  # an mlx_lm adapter directory: the default model
    try:
        info = RunDir(run).read()
    except RunError as e:  # never guess the base: a wrong one answers nonsense without an error
        raise RunError(f"{e}; give the base model with --model") from None
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    return info.get("model_path") or config.get("model")


def run(args) -> int:
    from localtune.chat import ChatSession, Sampling
    from localtune.errors import LocaltuneError

    if args.compare and not args.adapter:
        raise LocaltuneError("--compare needs --adapter RUN_DIR (base vs tuned)")
    from localtune.cli.notices import show_warning

    session = ChatSession.open(model_for_adapter(args.model, args.adapter), args.adapter, args.system,
                               on_event=show_warning)
    sampling = Sampling(args.temperature, args.top_p, args.max_tokens, args.seed)
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
                try:
                    sampling.temperature = float(rest)
                except ValueError:
                    print("(usage: /temp 0.7)")
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
