"""`localtune reward score RUN --data FILE`: score rows with a reward model (a `train reward` run)."""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("reward", help="use a reward model (made by `localtune train reward`)")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    score = verbs.add_parser(
        "score", help="score the answers in a file",
        description="Score each row's answer: preference pairs (both answers; prints how often chosen wins), "
                    "chat rows (the last assistant turn) or prompt/completion rows.")
    score.add_argument("run", metavar="RUN", help="a reward run directory")
    score.add_argument("--data", metavar="FILE", required=True,
                       help="preference pairs, chat rows or prompt/completion rows (JSONL or JSON), or a hub id")
    score.add_argument("--out", metavar="FILE", help="write one JSON line per row with its reward(s)")
    score.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass (default 16)")
    score.add_argument("--json", action="store_true",
                       help="make the last line of standard output one JSON object (rows, mean_reward; for "
                            "pairs also accuracy and mean_margin)")
    score.set_defaults(func=run_score)


def run_score(args) -> int:
    from localtune.errors import LocaltuneError
    from localtune.fsutil import atomic_write_text
    from localtune.reward.model import RewardModel
    from localtune.reward.score_file import score_file

    if args.batch_size < 1:
        raise LocaltuneError(f"--batch-size {args.batch_size}: must be at least 1")
    rm = RewardModel.open(args.run, batch_size=args.batch_size, on_event=_show)
    result = score_file(rm, args.data)
    for p in result.problems:
        print(f"skipped {p}", file=sys.stderr)
    if args.out:
        atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in result.rows))
    s = result.summary()
    if s["kind"] == "pairs":
        print(f"{s['pairs']} pairs: accuracy {s['accuracy']:.3f} (chosen scored higher), "
              f"mean margin {s['mean_margin']:.3f}, mean reward chosen {s['mean_chosen']:.3f} / "
              f"rejected {s['mean_rejected']:.3f}")
    else:
        print(f"{s['rows']} answers: mean reward {s['mean_reward']:.3f}")
    if args.out:
        print(f"wrote {args.out}")
    if args.json:
        print(json.dumps(s))
    return 0


def _show(event: dict) -> None:
    if event.get("message"):
        print(event["message"], file=sys.stderr, flush=True)
