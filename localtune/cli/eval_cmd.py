"""`localtune eval`: the base and each --adapter answer the same prompts from one loaded model;
one table of IFEval numbers, answer health and user checks; DIR/summary.json and DIR/answers.jsonl."""

from __future__ import annotations

import os
import sys

from localtune.cli.sampling_flags import add_sampling_flags, sampling_overrides


def register(sub) -> None:
    p = sub.add_parser("eval", help="judge the answers: IFEval instructions, ended/loops, your own checks, "
                                    "base and adapters side by side")
    p.add_argument("--model", help="model dir, .gguf or hub id (default: the first run's model, else SmolLM2)")
    p.add_argument("--adapter", metavar="RUN", action="append", default=[],
                   help="a run directory (repeat to compare several; they must share the base model)")
    p.add_argument("--no-base", action="store_true", help="leave out the base model (adapters off)")
    p.add_argument("--ifeval", metavar="FILE", help="IFEval-schema rows (JSONL) or a hub id such as google/IFEval")
    p.add_argument("--prompts", metavar="FILE", help="prompts: plain text (one a line) or JSONL chat/prompt rows")
    p.add_argument("--data", metavar="VALID", help="a chat dataset: each row's last assistant turn is removed "
                                                   "and the model answers")
    p.add_argument("--checks", metavar="FILE.yaml", help="your own named checks (starts_with, ends_with, "
                                                         "must_match, must_not_match, max_words)")
    p.add_argument("--reward-model", metavar="RUN", help="also score every answer with this reward run (`localtune "
                                                      "train reward`): each model's mean reward in the table")
    p.add_argument("--batch-size", type=int, default=None, help="answers decoded together (default 32)")
    p.add_argument("--out", metavar="DIR", help="where summary.json and answers.jsonl go (default: "
                                                "RUN/eval/<time>/ of the first --adapter, else ./eval/<time>/)")
    add_sampling_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from localtune.data.prompts import read_data_prompts, read_ifeval, read_prompt_file
    from localtune.errors import LocaltuneError
    from localtune.eval import (check_out_dir, check_shared_base, compare, default_out_dir, load_checks,
                                model_for_runs, prepare_out_dir, variants_for, write_results)
    from localtune.generate import Sampling
    from localtune.models import load_model, resolve_model

    if not (args.ifeval or args.prompts or args.data):
        raise LocaltuneError("nothing to evaluate: give --ifeval FILE, --prompts FILE and/or --data VALID")
    if args.no_base and not args.adapter:
        raise LocaltuneError("--no-base leaves nothing to evaluate without --adapter RUN")
    if args.batch_size is not None and args.batch_size < 1:
        raise LocaltuneError(f"--batch-size {args.batch_size}: must be at least 1")
    overrides = sampling_overrides(args)  # bad flags fail before anything loads
    checks = load_checks(args.checks) if args.checks else []
    variants = variants_for(args.adapter, include_base=not args.no_base)
    out_dir = check_out_dir(args.out or default_out_dir(args.adapter[0] if args.adapter else None))

    rows, sets = [], []
    if args.ifeval:
        rows += read_ifeval(args.ifeval, on_event=_show_event)
        sets.append({"kind": "ifeval", "source": args.ifeval, "rows": len(rows)})
    if args.prompts:
        got = read_prompt_file(args.prompts)
        rows += got
        sets.append({"kind": "prompts", "source": args.prompts, "rows": len(got)})
    if args.data:
        got, problems = read_data_prompts(args.data, on_event=_show_event)
        for p in problems:
            print(f"skipped {p}", file=sys.stderr)
        rows += got
        sets.append({"kind": "data", "source": args.data, "rows": len(got)})

    model_path = resolve_model(args.model or model_for_runs(args.adapter), on_event=_show_event)
    check_shared_base(model_path, args.adapter)
    sampling = Sampling.from_generation_config(model_path, **overrides).validate()
    print(f"model: {model_path}\nsampling: " + ", ".join(f"{k}={v}" for k, v in sampling.to_dict().items()))
    print(f"prompts: {len(rows)} (" + ", ".join(f"{s['rows']} {s['kind']}" for s in sets) + ")")
    model, tokenizer = load_model(model_path)
    scorers = []
    if args.reward_model:  # scores inside the loaded model when it is the reward run's base
        from localtune.reward.model import RewardModel

        scorers.append(RewardModel.open(args.reward_model, model=model, tokenizer=tokenizer,
                                        on_event=_show_event).scorer("reward"))
    evals = compare(model, tokenizer, rows, variants, sampling, checks=checks, scorers=scorers,
                    batch_size=args.batch_size, on_event=_show_event)
    meta = {"model_path": str(model_path), "sampling": sampling.to_dict(), "prompt_sets": sets,
            "checks": [c.describe() for c in checks]}
    if args.reward_model:
        meta["reward_model"] = os.path.abspath(args.reward_model)
    summary_path, answers_path = write_results(prepare_out_dir(out_dir), evals, meta)
    print()
    print(format_table([(e.name, e.summary()) for e in evals], [c.name for c in checks]))
    families = format_families([(e.name, e.summary()) for e in evals])
    if families:
        print("\n" + families)
    print(f"\nwrote {summary_path} and {answers_path}")
    return 0


def _show_event(e: dict) -> None:
    kind, stage = e.get("event"), e.get("stage")
    if kind == "eval" and stage == "model":
        print(f"{e['model']}: answering {e['rows']} prompts ...", file=sys.stderr, flush=True)
    elif kind == "eval" and stage == "generate" and sys.stderr.isatty():
        print(f"\r  {e['done']}/{e['total']} answers", end="", file=sys.stderr, flush=True)
    elif kind == "eval" and stage == "done":
        end = "\n" if sys.stderr.isatty() else ""
        print(f"{end}  done in {e['seconds']:.1f} s", file=sys.stderr, flush=True)
    elif e.get("message"):
        print(e["message"], file=sys.stderr, flush=True)


def _fmt(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def _grid(header: list[str], lines: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
           for r in [header] + lines]
    return "\n".join(out)


ROWS = (("prompt_strict", "IFEval prompt-level strict", ".2f"),
        ("prompt_loose", "IFEval prompt-level loose", ".2f"),
        ("instruction_strict", "IFEval instruction-level strict", ".2f"),
        ("instruction_loose", "IFEval instruction-level loose", ".2f"),
        ("ended", "ended (EOS before max tokens)", ".2f"),
        ("loops", "loops", ".2f"),
        ("mean_tokens", "mean answer tokens", ".1f"))


def format_table(models: list[tuple[str, dict]], check_names: list[str]) -> str:
    """One row per number, one column per model."""
    lines = [[label] + [_fmt(s[key], spec) for _, s in models] for key, label, spec in ROWS
             if any(s[key] is not None for _, s in models)]
    lines += [[f"check: {c}"] + [_fmt(s["checks"].get(c)) for _, s in models] for c in check_names]
    if check_names:
        lines.append(["every check passed"] + [_fmt(s.get("checks_passed")) for _, s in models])
    scores = list(dict.fromkeys(k for _, s in models for k in s["scores"]))
    lines += [[f"score: {k}"] + [_fmt(s["scores"].get(k), ".3f") for _, s in models] for k in scores]
    return _grid(["answers"] + [f"{name} ({s['answers']})" for name, s in models], lines)


def format_families(models: list[tuple[str, dict]]) -> str:
    """IFEval per family: instruction-level strict / loose per model ('' without IFEval rows)."""
    from localtune.eval import FAMILIES

    present = [f for f in FAMILIES if any(f in s["families"] for _, s in models)]
    if not present:
        return ""
    lines = []
    for fam in present:
        n = next(s["families"][fam]["instructions"] for _, s in models if fam in s["families"])
        cells = []
        for _, s in models:
            f = s["families"].get(fam)
            cells.append("-" if f is None else f"{f['strict']:.2f} / {f['loose']:.2f}")
        lines.append([fam, str(n)] + cells)
    return _grid(["IFEval family (strict / loose)", "instructions"] + [name for name, _ in models], lines)
