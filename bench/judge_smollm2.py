"""The AI judge on the samples' preference pairs: how consistent it is under the order swap, how
much it favours the first position, and how often it agrees with the labels.

    python bench/judge_smollm2.py [--judge-model default] [--judge-adapter RUN] [--files train valid]
                                  [--limit N] [--prefix TEXT ...] [--out results.json]

Each --prefix is one variant of the judge's reply start (default: localtune's); each file is
judged blind (both orders). Numbers: see localtune/feedback/judging.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import localtune  # noqa: E402,F401


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--judge-model", default="default")
    ap.add_argument("--judge-adapter")
    ap.add_argument("--files", nargs="+", default=["train", "valid"])
    ap.add_argument("--limit", type=int, help="the first N pairs of each file")
    ap.add_argument("--prefix", action="append", help="assistant prefix variants (default: localtune's)")
    ap.add_argument("--out")
    args = ap.parse_args()

    from localtune.feedback.judge import ASSISTANT_PREFIX, load_judge
    from localtune.feedback.judging import judge_pairs_file

    judge = load_judge(args.judge_model, args.judge_adapter)
    rows = []
    for prefix in args.prefix or [ASSISTANT_PREFIX]:
        judge.assistant_prefix = prefix
        judge.label_ids = judge._label_token_ids()
        for name in args.files:
            path = common.ROOT / "samples" / "dpo" / f"{name}.jsonl"
            if args.limit:
                tmp = Path(tempfile.mkdtemp()) / f"{name}.jsonl"
                tmp.write_text("".join(path.read_text().splitlines(keepends=True)[: args.limit]))
                path = tmp
            start, cpu = time.time(), time.process_time()
            r = judge_pairs_file(judge, path).to_json()
            rows.append({"prefix": prefix, "file": name, **{k: r[k] for k in (
                "pairs", "consistent", "first_position", "agreement", "agreement_decided", "agreement_averaged",
                "mean_confidence")}, "wall_s": round(time.time() - start, 1),
                "cpu_s": round(time.process_time() - cpu, 1)})
            print(json.dumps(rows[-1]), flush=True)
    keys = ["prefix", "file", "pairs", "consistent", "first_position", "agreement", "agreement_decided",
            "agreement_averaged", "mean_confidence", "cpu_s"]
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join("-" if r[k] is None else (f"{r[k]:.3f}" if isinstance(r[k], float) else repr(r[k])
                                                          if k == "prefix" else str(r[k])) for k in keys) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps({"judge_model": args.judge_model, "judge_adapter": args.judge_adapter,
                                              "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
