"""`localtune data check|stats|split|preview`: look at a dataset before training on it."""

from __future__ import annotations

import json

from localtune.safetext import printable


def register(sub) -> None:
    from localtune.cli.argtypes import nonneg_int, open_fraction, positive_int

    data = sub.add_parser("data", help="check, describe, split and preview datasets")
    cmds = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    check = cmds.add_parser("check", help="validate every row; problems as file:line: reason")
    check.add_argument("files", nargs="+", metavar="FILE", help="a data file or a Hugging Face dataset "
                       "id (owner/name, owner/name:split, owner/name@revision)")
    check.add_argument("--format", help="force a format instead of detecting it "
                       "('preference' for DPO pairs)")
    check.add_argument("--columns", help="map dataset columns to the expected keys, "
                       "e.g. question=instruction,answer=output")
    check.set_defaults(func=run_check)

    stats = cmds.add_parser("stats", help="rows, token-length percentiles, over-long rows, duplicates")
    stats.add_argument("file")
    stats.add_argument("--model", help="tokenize with this model's tokenizer (default: SmolLM2)")
    stats.add_argument("--max-seq-len", type=positive_int, default=2048)
    stats.add_argument("--format")
    stats.add_argument("--columns", help="map dataset columns to the expected keys, "
                       "e.g. question=instruction,answer=output")
    stats.add_argument("--no-tokens", action="store_true", help="skip tokenizing (no model needed)")
    stats.add_argument("--json", action="store_true", help="print the numbers as JSON")
    stats.set_defaults(func=run_stats)

    split = cmds.add_parser("split", help="split a file into train.jsonl and valid.jsonl")
    split.add_argument("file")
    split.add_argument("--out", required=True, help="output directory (train.jsonl and valid.jsonl go in it)")
    split.add_argument("--valid-fraction", type=open_fraction, default=0.1)
    split.add_argument("--seed", type=nonneg_int, default=0)
    split.add_argument("--force", action="store_true",
                       help="replace train.jsonl / valid.jsonl already in --out")
    split.set_defaults(func=run_split)

    preview = cmds.add_parser("preview", help="show a row as the model sees it, trained tokens marked")
    preview.add_argument("file")
    preview.add_argument("--model", help="whose chat template and tokenizer (default: SmolLM2)")
    preview.add_argument("--row", type=positive_int, default=1, help="which usable row (1-based, default 1)")
    preview.add_argument("--format")
    preview.add_argument("--columns", help="map dataset columns to the expected keys, "
                       "e.g. question=instruction,answer=output")
    preview.add_argument("--train-on-prompt", action="store_true")
    preview.set_defaults(func=run_preview)


def run_check(args) -> int:
    from localtune.errors import DataError

    bad_files = 0
    for path in args.files:
        try:
            ds = _read(_local(path), args.format, args.columns)
        except DataError as e:
            print(f"error: {printable(str(e))}")
            bad_files += 1
            continue
        for p in ds.problems:
            print(printable(str(p), one_line=True))
        print(f"{printable(path, one_line=True)}: {ds.format} format, {ds.n_rows} rows, {len(ds.examples)} usable, "
              f"{len(ds.problems)} problem{'s' if len(ds.problems) != 1 else ''}")
        bad_files += bool(ds.problems)
    return 1 if bad_files else 0


def _local(spec, split="train"):
    """A local file for spec: itself, or a hub dataset id's file (downloaded, cache first)."""
    import sys

    from localtune.data.hub import resolve_dataset

    def say(e):
        if e.get("message") and (e.get("stage") or e.get("cached")):  # not per-file progress
            print(e["message"], file=sys.stderr)

    return resolve_dataset(spec, split=split, on_event=say)


def _is_preference(path, fmt, columns=None) -> bool:
    from localtune.data.preferences import FORMAT, looks_like_preferences

    if fmt:
        return fmt.strip().lower() == FORMAT
    try:
        return looks_like_preferences(path, columns)
    except Exception:  # unreadable: let read_dataset report it as before
        return False


def _read(path, fmt, columns=None):
    """A DatasetFile for SFT data, or for DPO preference pairs (rows with chosen/rejected)."""
    from localtune.data import read_dataset
    from localtune.data.preferences import read_preferences

    if _is_preference(path, fmt, columns):
        return read_preferences(path, columns)
    return read_dataset(path, format=fmt, columns=columns)


def _tokenizer(model_spec):
    from localtune.models import load_tokenizer_only

    return load_tokenizer_only(model_spec)


def run_stats(args) -> int:
    from localtune.data import dataset_stats, read_dataset

    args.file = _local(args.file)
    if _is_preference(args.file, args.format, args.columns):
        return _preference_stats(args)
    ds = read_dataset(args.file, format=args.format, columns=args.columns)
    tok = None if args.no_tokens else _tokenizer(args.model)
    s = dataset_stats(ds, tok, max_seq_len=args.max_seq_len)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"{printable(s['path'], one_line=True)}: {s['format']} format")
    print(f"  rows {s['rows']}, usable {s['usable_rows']}, problems {s['problems']}")
    t = s.get("turns", {})
    if t:
        print(f"  assistant turns {t.get('assistant_turns')}, multi-turn rows {t.get('multi_turn_rows')}")
    _print_lengths(s, ("tokens", "trained_tokens"), args.max_seq_len)
    d = s["duplicates"]
    print(f"  duplicates: {d['count']}" + (f" (lines {', '.join(map(str, d['lines']))})" if d["count"] else ""))
    return 0


def _print_lengths(s: dict, keys: tuple[str, ...], max_seq_len: int) -> None:
    """Token-length percentiles and the rows over the max length, for SFT and preference stats."""
    for key in keys:
        if key in s:
            v = s[key]
            print(f"  {key.replace('_', ' ')}: p50 {v['p50']}, p90 {v['p90']}, p99 {v['p99']}, "
                  f"max {v['max']}, total {v['total']}")
    if "over_max_seq_len" in s:
        o = s["over_max_seq_len"]
        lines = ", ".join(map(str, o["lines"]))
        print(f"  over --max-seq-len {max_seq_len}: {o['count']}" + (f" (lines {lines})" if lines else ""))


def _preference_stats(args) -> int:
    from localtune.data.preferences import preference_stats, read_preferences

    ds = read_preferences(args.file, args.columns)
    tok = None if args.no_tokens else _tokenizer(args.model)
    s = preference_stats(ds, tok, max_seq_len=args.max_seq_len)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"{printable(s['path'], one_line=True)}: {s['format']} pairs ({', '.join(f'{k} {v}' for k, v in s['formats'].items())})")
    print(f"  rows {s['rows']}, usable {s['usable_rows']}, problems {s['problems']}, "
          f"multi-turn prompts {s['multi_turn_prompts']}")
    ident = s["identical_pairs"]
    print(f"  chosen == rejected: {ident['count']}"
          + (f" (lines {', '.join(map(str, ident['lines']))})" if ident["count"] else ""))
    _print_lengths(s, ("tokens", "chosen_tokens", "rejected_tokens"), args.max_seq_len)
    lost = s.get("identical_after_truncation")
    if lost and lost["count"]:
        print(f"  identical after cutting to --max-seq-len {args.max_seq_len}: {lost['count']} "
              f"(lines {', '.join(map(str, lost['lines']))}; training drops them)")
    return 0


def run_split(args) -> int:
    from localtune.data import split_dataset

    train, valid = split_dataset(args.file, args.out, valid_fraction=args.valid_fraction, seed=args.seed,
                                 force=args.force)
    print(f"train: {printable(str(train), one_line=True)}\nvalid: {printable(str(valid), one_line=True)}")
    return 0


def run_preview(args) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.text import Text

    from localtune.data import preview_segments, read_dataset
    from localtune.errors import DataError

    ds = read_dataset(_local(args.file), format=args.format, columns=args.columns)
    if not 1 <= args.row <= len(ds.examples):
        raise DataError(f"{args.file}: --row {args.row} out of range (1..{len(ds.examples)} usable rows)")
    ex = ds.examples[args.row - 1]
    segments = preview_segments(ex, _tokenizer(args.model), train_on_prompt=args.train_on_prompt)
    console = Console()
    source = escape(printable(f"{ex.source}:{ex.line}", one_line=True))
    console.print(f"{source} ({ex.format}); [reverse green]trained tokens[/] highlighted, "
                  "the rest is context", highlight=False)
    text = Text()
    for piece, trained in segments:  # Text, not markup: a row's "[red]" stays text
        text.append(printable(piece), style="reverse green" if trained else "dim")
    console.print(text)
    if not console.is_terminal:  # no colours in a pipe: say which parts are trained
        print("\ntrained parts:")
        for piece, trained in segments:
            if trained:
                print(f"  {piece!r}")
    return 0
