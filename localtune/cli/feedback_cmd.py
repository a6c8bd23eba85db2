"""`localtune feedback`: sample candidate answers, rate them (a person), judge them (an AI under a
constitution; critique-revise), export preference pairs and SFT rows. The engine is
localtune.feedback; this file parses flags and prints."""

from __future__ import annotations

import json
import sys

from localtune.cli.sampling_flags import add_sampling_flags, sampling_overrides


def register(sub) -> None:
    p = sub.add_parser("feedback", help="rate answers (people or an AI judge) into preference pairs for DPO")
    fsub = p.add_subparsers(dest="feedback_command", metavar="STEP", required=True)

    s = fsub.add_parser("sample", help="answer prompts 2-4 times each into a new feedback session")
    s.add_argument("--model", help="model dir, .gguf or hub id (default: the --adapter run's model, else SmolLM2)")
    s.add_argument("--adapter", metavar="RUN", help="a run directory whose adapter answers")
    s.add_argument("--prompts", metavar="FILE", action="append", default=[],
                   help="prompts: plain lines, chat/prompt rows, IFEval rows, preference pairs or a chat "
                        "dataset (repeat for several; default with --adapter: the run's validation data)")
    s.add_argument("--n", type=int, default=2, help="candidate answers per prompt, 2..4 (default 2)")
    s.add_argument("--temperatures", metavar="T1,T2,..", help="one temperature per candidate (sets --n)")
    s.add_argument("--limit", type=int, help="only the first N prompts")
    s.add_argument("--retries", type=int, default=2,
                   help="extra rounds for prompts whose answers came out identical (default 2)")
    s.add_argument("--batch-size", type=int, help="answers decoded together (default 32)")
    s.add_argument("--out", metavar="DIR", help="the session folder, new or empty (default with --adapter: "
                                                "RUN/feedback/<time>/)")
    add_sampling_flags(s)
    s.set_defaults(func=run_sample)

    r = fsub.add_parser("rate", help="rate a session's answers in this terminal (works over ssh and with piped keys)")
    r.add_argument("dir", metavar="DIR", help="the session folder")
    r.add_argument("--rater", help="your name in the labels log (default: the login name)")
    r.set_defaults(func=run_rate)

    j = fsub.add_parser("judge", help="an AI judge compares the answers of a session (or a pairs file)")
    j.add_argument("dir", metavar="DIR", nargs="?", help="the session folder (or use --pairs)")
    j.add_argument("--pairs", metavar="FILE", help="judge this preference file instead (labels hidden from the "
                                                   "judge) and report agreement with its labels")
    j.add_argument("--out", metavar="FILE", help="with --pairs: every pair with the judge's verdict (JSONL)")
    j.add_argument("--judge-model", metavar="M", help="the judge: model dir, .gguf or hub id")
    j.add_argument("--judge-adapter", metavar="RUN", help="a run whose adapter the judge model uses")
    j.add_argument("--constitution", metavar="FILE", help="YAML principles (default: localtune's, as "
                                                          "samples/constitution.yaml)")
    j.add_argument("--batch-size", type=int, default=8, help="judge prompts per forward pass (default 8)")
    j.add_argument("--max-answer-tokens", type=int, default=384,
                   help="longer answers are cut for the judge (default 384)")
    j.add_argument("--rejudge", action="store_true", help="judge pairs this judge has verdicts for again")
    j.add_argument("--training-data", metavar="FILE",
                   help="with --pairs: instead of judging, write SFT rows (each pair in both orders, the "
                        "reply its label) to train a judge adapter with `train sft`")
    j.add_argument("--critique-revise", action="store_true",
                   help="instead of judging: the model critiques each answer by a sampled principle and "
                        "revises it (default model: the session's own, with its adapter)")
    j.add_argument("--json", action="store_true", help="end with one line of JSON (pairs, agreement, consistent ...)")
    add_sampling_flags(j)
    j.set_defaults(func=run_judge)

    e = fsub.add_parser("export", help="write preference pairs (and SFT rows of corrected answers)")
    e.add_argument("dir", metavar="DIR", help="the session folder")
    e.add_argument("--out", metavar="PAIRS.jsonl", required=True, help="the pairs file (train dpo --data)")
    e.add_argument("--sft-out", metavar="FILE", help="corrected answers as SFT rows (default: PAIRS.sft.jsonl)")
    e.add_argument("--min-confidence", type=float, default=0.0,
                   help="leave out judge pairs below this order-averaged probability (a person's are 1)")
    e.add_argument("--source", default="human,judge,critique",
                   help="label sources to use, comma-separated (default: all; a person's label wins)")
    e.add_argument("--all-pairs", action="store_true",
                   help="every pair a ranking implies (default: best over worst per prompt)")
    e.add_argument("--overwrite", action="store_true", help="replace existing output files")
    e.set_defaults(func=run_export)

    w = fsub.add_parser("show", help="a session's model, counts of labels and verdicts")
    w.add_argument("dir", metavar="DIR")
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=run_show)


# --- printing events -------------------------------------------------------------------------------

def show_event(e: dict) -> None:
    kind = e.get("event")
    if kind == "feedback":
        step, stage = e.get("step"), e.get("stage")
        label = {"sample": "answers", "judge": "judge passes", "critique": "critiques", "revise": "revisions"}
        if step == "start":
            print(f"{stage}: {e.get('total')} {label.get(stage, '')} ...", file=sys.stderr, flush=True)
        elif step == "progress" and sys.stderr.isatty():
            print(f"\r  {e.get('done')}/{e.get('total')}", end="", file=sys.stderr, flush=True)
        elif step == "done":
            end = "\n" if sys.stderr.isatty() else ""
            print(f"{end}  done in {e.get('seconds')} s", file=sys.stderr, flush=True)
    elif kind == "phase" and e.get("phase") == "loading_model":
        print("loading the model ...", file=sys.stderr, flush=True)
    elif e.get("message"):
        print(e["message"], file=sys.stderr, flush=True)


def _temperatures(text: str | None) -> list[float] | None:
    from localtune.errors import LocaltuneError

    if not text:
        return None
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise LocaltuneError(f"--temperatures {text!r}: give numbers separated by commas, e.g. 0.5,1.0") from None


# --- steps ------------------------------------------------------------------------------------------

def run_sample(args) -> int:
    from localtune.errors import LocaltuneError
    from localtune.feedback.sample import check_n, default_session_dir, run_prompt_file, sample_session

    temperatures = _temperatures(args.temperatures)
    n = check_n(args.n, temperatures)
    overrides = sampling_overrides(args)
    if args.limit is not None and args.limit < 1:
        raise LocaltuneError(f"--limit {args.limit}: must be at least 1")
    if args.retries < 0:
        raise LocaltuneError(f"--retries {args.retries}: must be >= 0")
    if not args.prompts and not args.adapter:
        raise LocaltuneError("give the prompts to answer: --prompts FILE")
    if not args.out and not args.adapter:
        raise LocaltuneError("give the session folder: --out DIR")
    prompts = args.prompts or [run_prompt_file(args.adapter)]
    out = args.out or default_session_dir(args.adapter)
    session = sample_session(out, prompts=prompts, model=args.model, adapter=args.adapter, n=n,
                             sampling_overrides=overrides, temperatures=temperatures, retries=args.retries,
                             batch_size=args.batch_size, limit=args.limit, on_event=show_event)
    stats = session.manifest.get("stats", {})
    print(f"session {session.path}: {len(session.items)} prompts, "
          f"{sum(len(i.candidates) for i in session.items)} answers "
          f"({stats.get('duplicates', 0)} duplicates and {stats.get('empty', 0)} empty answers dropped; "
          f"{stats.get('too_few_answers', 0)} prompts without two different answers left out)")
    print(f"next: localtune feedback rate {session.path}   (or: localtune feedback judge {session.path} "
          "--judge-model M)")
    return 0


def run_rate(args) -> int:
    from localtune.cli.feedback_term import rate
    from localtune.feedback import FeedbackSession

    return rate(FeedbackSession.open(args.dir), rater_name=args.rater)


def run_judge(args) -> int:
    from localtune.errors import LocaltuneError

    if args.pairs and args.dir:
        raise LocaltuneError("give a session DIR or --pairs FILE, not both")
    if not args.pairs and not args.dir:
        raise LocaltuneError("give a session DIR (or --pairs FILE)")
    if args.out and not args.pairs:
        raise LocaltuneError("--out is for --pairs (a session keeps its verdicts in its labels log)")
    if args.training_data:
        if not args.pairs:
            raise LocaltuneError("--training-data turns a --pairs FILE into judge training rows")
        return _judge_training_data(args)
    if args.critique_revise:
        if args.pairs:
            raise LocaltuneError("--critique-revise works on a session DIR (the answers it revises)")
        return _critique(args)
    if not args.judge_model:
        raise LocaltuneError("give the judge: --judge-model M (a model dir, .gguf or hub id)")
    if args.batch_size < 1 or args.max_answer_tokens < 1:
        raise LocaltuneError("--batch-size and --max-answer-tokens must be at least 1")
    from localtune.feedback.constitution import load_constitution
    from localtune.feedback.judge import load_judge
    from localtune.feedback.judging import judge_pairs_file, judge_session

    load_constitution(args.constitution)  # a bad file fails before the model loads
    if args.dir:
        from localtune.feedback import FeedbackSession

        session = FeedbackSession.open(args.dir)
    judge = load_judge(args.judge_model, args.judge_adapter, args.constitution, on_event=show_event,
                       batch_size=args.batch_size, max_answer_tokens=args.max_answer_tokens)
    if args.pairs:
        report = judge_pairs_file(judge, args.pairs, args.out, on_event=show_event)
        against = "the file's labels"
    else:
        report = judge_session(session, judge, rejudge=args.rejudge, on_event=show_event)
        against = "the person's rankings"
    print(format_report(report, against))
    if args.json:
        print(json.dumps(report.to_json()))
    return 0


def _judge_training_data(args) -> int:
    from localtune.data.preferences import read_preferences
    from localtune.feedback.constitution import load_constitution
    from localtune.feedback.judge import Judge
    from localtune.fsutil import atomic_write_text
    from localtune.models import load_tokenizer_only

    constitution = load_constitution(args.constitution)
    ds = read_preferences(args.pairs)
    for p in ds.problems:
        print(f"skipped {p}", file=sys.stderr)
    judge = Judge(None, load_tokenizer_only(args.judge_model), constitution,
                  max_answer_tokens=args.max_answer_tokens)  # the judge's prompts only: no weights
    rows = judge.training_rows(ds.examples)
    atomic_write_text(args.training_data, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(rows)} judge training rows ({len(ds.examples)} pairs, both orders) to {args.training_data}")
    print(f"next: localtune train sft --model {args.judge_model} --data {args.training_data} --out adapters/judge; "
          f"then --judge-adapter adapters/judge")
    return 0


def format_report(report, against: str) -> str:
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    lines = [f"pairs judged: {report.pairs}" + (f" ({report.reused} verdicts kept from before)" if report.reused else ""),
             f"consistent (verdict survives the order swap): {pct(report.consistent)}",
             f"answer shown first wins: {pct(report.first_position)} of readings (50% = no position bias)",
             f"mean confidence: {'-' if report.mean_confidence is None else f'{report.mean_confidence:.3f}'}"]
    if report.labelled_pairs:
        lines += [f"agreement with {against} ({report.labelled_pairs} pairs): {pct(report.agreement)} "
                  f"(ties count as misses); {pct(report.agreement_decided)} of consistent verdicts; "
                  f"{pct(report.agreement_averaged)} by order-averaged probability"]
    else:
        lines.append(f"agreement: no pairs with {against} to compare")
    if report.out:
        lines.append(f"wrote {report.out}")
    return "\n".join(lines)


def _critique(args) -> int:
    from localtune.feedback import FeedbackSession
    from localtune.feedback.constitution import load_constitution
    from localtune.feedback.critique import critique_session
    from localtune.feedback.sample import SAMPLING_DEFAULTS, load_policy
    from localtune.generate import Sampling

    constitution = load_constitution(args.constitution)
    overrides = {**SAMPLING_DEFAULTS, **sampling_overrides(args)}
    session = FeedbackSession.open(args.dir)
    m = session.manifest
    model_spec = args.judge_model or m.get("model_path")
    adapter = args.judge_adapter or (None if args.judge_model else m.get("adapter"))
    model, tokenizer, model_path = load_policy(model_spec, adapter, show_event)
    sampling = Sampling.from_generation_config(model_path, **overrides).validate()
    counts = critique_session(session, model, tokenizer, constitution, sampling, model_name=str(model_path),
                              on_event=show_event)
    print(f"critique-revise: {counts['answers']} answers revised, {counts['usable']} usable revisions "
          f"({counts['unfinished']} cut at max tokens); {counts['already_revised']} revised before")
    if args.json:
        print(json.dumps(counts))
    return 0


def run_export(args) -> int:
    from localtune.feedback import FeedbackSession, export_session

    sources = tuple(s.strip() for s in args.source.split(",") if s.strip())
    report = export_session(FeedbackSession.open(args.dir), args.out, sft_out=args.sft_out, sources=sources,
                            min_confidence=args.min_confidence, all_pairs=args.all_pairs, overwrite=args.overwrite)
    by = ", ".join(f"{k} {v}" for k, v in report.by_source.items() if v)
    print(f"wrote {report.pairs} pairs to {report.out} ({by})")
    if report.sft_out:
        print(f"wrote {report.sft_rows} SFT rows (corrected answers) to {report.sft_out}")
    if report.left_out:
        print("no pair from: " + ", ".join(f"{k} {v}" for k, v in report.left_out.items()))
    print(f"next: localtune train dpo --data {report.out} ...")
    return 0


def run_show(args) -> int:
    from localtune.feedback import FeedbackSession, replay
    from localtune.feedback.judging import session_report

    session = FeedbackSession.open(args.dir)
    state = replay(session.records())
    m = session.manifest
    info = {"path": str(session.path), "model": m.get("model_path"), "adapter": m.get("adapter"),
            "prompts": len(session.items), "answers": sum(len(i.candidates) for i in session.items),
            "human": {**state.counts(), "rated": len(state.human)},
            "judge_verdicts": sum(len(v) for v in state.judge.values()),
            "revisions": sum(len(v) for v in state.revisions.values())}
    report = session_report(session) if info["judge_verdicts"] else None
    if report is not None:
        info["judge"] = {k: report.to_json()[k] for k in ("consistent", "agreement", "labelled_pairs")}
    print(json.dumps(info) if args.json else "\n".join(f"{k}: {v}" for k, v in info.items()))
    return 0
