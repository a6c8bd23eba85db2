"""`localtune demo`: the main job. Import SmolLM2 offline, LoRA-tune it on samples/ (SFT, then DPO
from the SFT adapter), show held-out loss and preference accuracy before/after, then judge the base,
SFT and DPO models by their answers (one eval table: Pip checks, ended, loops, IFEval) and show
their answers to the held-out prompts side by side (cli/demo_report.py)."""

from __future__ import annotations

import time
from pathlib import Path

from localtune.cli.sampling_flags import add_sampling_flags, sampling_for, sampling_overrides
from localtune.errors import LocaltuneError
from localtune.runs.layout import DEFAULT_ROOT

DEMO_MAX_TOKENS = 128  # every Pip answer in samples/sft fits (325 of 325 but one, at 172 tokens)


def repo_root() -> Path:
    """The folder holding the demo's samples/: the repository this localtune runs from (a clone,
    an editable install), else the working directory. The demo then works from any folder; a
    LocaltuneError says what to do where neither has them (e.g. localtune installed from a wheel)."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (root / "samples" / "sft.yaml").is_file():
            return root
    raise LocaltuneError("samples/ not found: `localtune demo` tunes on the repository's samples/ folder, "
                         f"which is neither beside the localtune package ({Path(__file__).resolve().parents[2]}) "
                         "nor in the current folder; run it in a clone of the repository (make demo)")


def _sample_overrides(cfg, root: Path) -> dict:
    """What the demo changes in a sample config: its relative data paths are the repository's
    (samples/...), wherever the demo runs; and it validates at the start and the end only (the
    lines it prints), not also mid-run as the sample configs do for a user's own runs (~40 s of a
    15-minute demo on 2 cores)."""
    paths = {k: str(root / v) for k in ("data", "valid") if (v := getattr(cfg, k)) and not Path(v).is_absolute()}
    return paths | {"eval_every": 0}


def register(sub) -> None:
    from localtune.cli.argtypes import positive_int

    p = sub.add_parser("demo", help="the main job: tune SmolLM2 on samples/ (SFT then DPO) and compare")
    p.add_argument("--config", help="the SFT config (default: the repository's samples/sft.yaml)")
    p.add_argument("--dpo-config", help="the DPO config (default: samples/dpo.yaml)")
    p.add_argument("--prompts", help="held-out prompts, one a line: judged with the validation prompts, shown "
                                     "side by side (default: samples/sft/heldout_prompts.txt)")
    p.add_argument("--iters", type=positive_int, help="SFT steps (overrides the config; e.g. 10 for a smoke run)")
    p.add_argument("--dpo-iters", type=positive_int, help="DPO steps (overrides the config)")
    p.add_argument("--no-dpo", action="store_true", help="stop after SFT")
    p.add_argument("--preference-accuracy", action="store_true",
                   help="also score the DPO config's held-out pairs with each model (about 30 s more)")
    p.add_argument("--out", default=str(DEFAULT_ROOT), help="where the demo's run directories go")
    add_sampling_flags(p, max_tokens_help=f"most tokens per answer (default {DEMO_MAX_TOKENS})")
    p.set_defaults(func=run)


def _train(cfg, task, show, stop) -> tuple[Path, list[dict]]:
    from localtune.train.session import run_training

    events: list[dict] = []

    def record(e):
        events.append(e)
        show(e)

    return run_training(cfg, task, on_event=record, should_stop=stop, cfg_cls=type(cfg)), events


def _summary(name: str, events: list[dict]) -> None:
    vals = [e for e in events if e.get("event") == "val"]
    train = [e for e in events if e.get("event") == "train"]
    if vals:
        # the cross-entropy alone when the loss has an unlikelihood term (SFT --unlikelihood): the
        # number people compare with other runs and tools
        key = "val_nll" if "val_nll" in vals[-1] else "val_loss"
        line = f"{name}: held-out loss {vals[0][key]:.3f} -> {vals[-1][key]:.3f}"
        if "val_reward_accuracy" in vals[-1]:
            line += (f", held-out reward accuracy {vals[0]['val_reward_accuracy']:.2f} -> "
                     f"{vals[-1]['val_reward_accuracy']:.2f}")
        print(line + f" ({vals[-1]['step']} steps)")
    if train:
        tps = sum(e["tokens_per_sec"] for e in train) / len(train)
        print(f"{' ' * len(name)}  {train[-1]['elapsed']:.0f} s of training, {tps:.0f} tokens/s, "
              f"peak MLX memory {train[-1]['peak_memory_gb']:.2f} GB")


def run(args) -> int:
    from localtune import backend
    from localtune.cli.progress import TrainingDisplay
    from localtune.cli.train_cmd import StopFlag
    from localtune.config import build_config
    from localtune.config_dpo import DPOConfig
    from localtune.models import resolve_model
    from localtune.train.dpo import dpo_task
    from localtune.train.sft import sft_task

    sampling_overrides(args)  # a bad sampling flag fails now, not after the training
    samples = repo_root() / "samples"
    config = args.config or str(samples / "sft.yaml")
    dpo_config = args.dpo_config or str(samples / "dpo.yaml")
    info = backend.describe()
    print(f"device: {info['backend']} ({info['device']}), BLAS: {info['blas']}, MLX {info['mlx']}")
    prompts_file = Path(args.prompts or samples / "sft" / "heldout_prompts.txt")
    if not prompts_file.exists():
        raise LocaltuneError(f"{prompts_file}: held-out prompts file not found")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    stop = StopFlag().install()

    with TrainingDisplay() as show:
        stop.watch_output(show)
        sft_yaml = build_config(config)
        model_path = str(resolve_model(sft_yaml.model, on_event=show))
        sft_cfg = build_config(config, {"model": model_path, "out": f"{args.out}/demo-sft-{stamp}",
                                        "iters": args.iters, **(_sample_overrides(sft_yaml, samples.parent)
                                                                 if not args.config else {})})
        print("\n== SFT: LoRA on the Pip instruction set")
        sft_run, sft_events = _train(sft_cfg, sft_task, show, stop)
        dpo_run = dpo_events = None
        if not args.no_dpo and not stop():
            dpo_yaml = build_config(dpo_config, cls=DPOConfig)
            dpo_cfg = build_config(dpo_config, {"model": model_path, "adapter": str(sft_run),
                                                "out": f"{args.out}/demo-dpo-{stamp}", "iters": args.dpo_iters,
                                                **(_sample_overrides(dpo_yaml, samples.parent) if not args.dpo_config
                                                   else {})}, cls=DPOConfig)
            print("\n== DPO: preference pairs, starting from the SFT adapter (reference = SFT model)")
            dpo_run, dpo_events = _train(dpo_cfg, dpo_task, show, stop)

    print()
    _summary("SFT", sft_events)
    if dpo_events:
        _summary("DPO", dpo_events)
    if stop():  # stopped: no comparison of half-trained adapters, and a status that says so
        print(f"\nstopped; go on with: localtune train {'dpo' if dpo_run else 'sft'} --resume {dpo_run or sft_run}")
        return stop.exit_status()
    from localtune.cli.demo_report import DemoSets, report

    sets = DemoSets(heldout=prompts_file, valid=samples / "sft" / "valid.jsonl",
                    ifeval=samples / "ifeval" / "heldout.jsonl", checks=samples / "pip_checks.yaml",
                    pairs=Path(dpo_cfg.valid) if dpo_run and dpo_cfg.valid and args.preference_accuracy else None)
    stages = [("base", None), ("SFT", sft_run)] + ([("DPO", dpo_run)] if dpo_run else [])
    sampling = sampling_for(args, model_path, max_tokens=DEMO_MAX_TOKENS)
    print("\n== Judging the answers: base, SFT" + (", DPO" if dpo_run else "") + " (one loaded model)")
    print(report(model_path, stages, sets, sampling, on_event=_eval_progress))
    print(f"\nadapters: {sft_run}" + (f", {dpo_run}" if dpo_run else ""))
    print(f"chat with it: localtune chat --adapter {dpo_run or sft_run}")
    return 0


def _eval_progress(e: dict) -> None:
    if e.get("event") == "eval" and e.get("stage") == "model":
        print(f"  {e['model']}: answering {e['rows']} prompts in one batched pass ...", flush=True)
    elif e.get("event") == "eval" and e.get("stage") == "done":
        n = e.get("numbers") or {}
        print(f"  {e['model']}: {e['seconds']:.0f} s, ended {n.get('ended', 0):.2f}, loops {n.get('loops', 0):.2f} "
              f"(all its prompts)", flush=True)
