"""`localtune demo`: the main job. Import SmolLM2 offline, LoRA-tune it on samples/, and show the
held-out loss before/after and base vs tuned answers to held-out prompts."""

from __future__ import annotations

from pathlib import Path

SAMPLES = Path("samples")


def register(sub) -> None:
    p = sub.add_parser("demo", help="the main job: tune SmolLM2 on samples/ and compare answers")
    p.add_argument("--config", default=str(SAMPLES / "sft.yaml"))
    p.add_argument("--prompts", default=str(SAMPLES / "sft" / "heldout_prompts.txt"))
    p.add_argument("--iters", type=int, help="override the config's steps (e.g. 20 for a smoke run)")
    p.add_argument("--out", help="run directory (default: adapters/demo-sft-<time>)")
    p.add_argument("--max-tokens", type=int, default=120)
    p.set_defaults(func=run)


def run(args) -> int:
    import time

    from localtune import backend
    from localtune.chat import ChatSession, Sampling
    from localtune.cli.progress import TrainingDisplay
    from localtune.cli.train_cmd import StopFlag
    from localtune.config import build_config
    from localtune.errors import LocaltuneError
    from localtune.models import resolve_model
    from localtune.train.session import run_training
    from localtune.train.sft import sft_task

    info = backend.describe()
    print(f"device: {info['backend']} ({info['device']}), BLAS: {info['blas']}, MLX {info['mlx']}")
    overrides = {"out": args.out or f"adapters/demo-sft-{time.strftime('%Y%m%d-%H%M%S')}"}
    if args.iters:
        overrides["iters"] = args.iters
    cfg = build_config(args.config, overrides)
    prompts_file = Path(args.prompts)
    if not prompts_file.exists():
        raise LocaltuneError(f"{prompts_file}: held-out prompts file not found")
    prompts = [p.strip() for p in prompts_file.read_text(encoding="utf-8").splitlines() if p.strip()]

    events: list[dict] = []
    with TrainingDisplay() as show:
        model_path = resolve_model(cfg.model, on_event=show)
        cfg = cfg.replace(model=str(model_path))

        def record(e):
            events.append(e)
            show(e)

        run_dir = run_training(cfg, sft_task, on_event=record, should_stop=StopFlag().install())

    vals = [e for e in events if e.get("event") == "val"]
    train = [e for e in events if e.get("event") == "train"]
    print()
    if vals:
        print(f"held-out loss: {vals[0]['val_loss']:.3f} before -> {vals[-1]['val_loss']:.3f} after "
              f"({vals[-1]['step']} steps)")
    if train:
        tps = sum(e["tokens_per_sec"] for e in train) / len(train)
        print(f"training: {train[-1]['elapsed']:.0f} s, {tps:.0f} tokens/s, "
              f"peak MLX memory {train[-1]['peak_memory_gb']:.2f} GB")
    session = ChatSession.open(str(model_path), run_dir)
    sampling = Sampling(max_tokens=args.max_tokens)
    for prompt in prompts:
        answers = session.compare(prompt, sampling)
        print(f"\n=== {prompt}")
        print(f"--- base\n{answers['base'].strip()}")
        print(f"--- tuned\n{answers['tuned'].strip()}")
    print(f"\nadapter: {run_dir}\nchat with it: localtune chat --adapter {run_dir}")
    return 0
