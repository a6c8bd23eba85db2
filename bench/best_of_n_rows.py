"""Rejection-sampling rows for SFT (issue 13 experiment): n answers per prompt, keep the best.

    python bench/best_of_n_rows.py --prompts samples/ifeval/train.jsonl \
        --reward python:samples/grpo/rewards.py:substantive_ifeval --out rows.jsonl
        [--adapter RUN] [--n 4] [--temperature 0.7] [--max-tokens 128] [--seed 0] [--min-reward 1.0]

The model (SmolLM2 by default, `--adapter` on top) answers every prompt row n times, decoded together
(localtune.generate.generate_batch); the same reward sources as `localtune train grpo --reward`
score them (localtune.rewards: ifeval, checks, python functions ...). A prompt's answer is kept when
it ended (EOS before --max-tokens), does not loop (eval's detector) and its total reward is at least
--min-reward; the first such answer of each prompt becomes one chat row (the prompt's messages and
the answer as the assistant turn) for `localtune train sft --data rows.jsonl`. Prints the share of answers that ended,
looped and reached the bar, and how many prompts kept a row.

Why a bench script and not a command: it is the experiment behind bench/NOTES.md's "Best-of-n SFT"
section (session 9), kept so the numbers there can be rerun; it is not (yet) part of the product.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402,F401

import localtune  # noqa: E402,F401


def pick_best(answers, rewards, n: int, min_reward: float):
    """Per prompt (answers prompt-major, n each): its first answer that ended, does not loop and whose
    reward is at least `min_reward`, else None; and the counts over all answers (ended, loops, and
    how many meet the whole bar: "kept")."""
    from localtune.eval.health import loops

    picks, counts = [], {"ended": 0, "loops": 0, "kept": 0}
    for start in range(0, len(answers), n):
        best = None
        for c, reward in zip(answers[start:start + n], rewards[start:start + n]):
            looped = loops(c.text)
            ok = c.ended and not looped and reward is not None and reward >= min_reward
            counts["ended"] += bool(c.ended)
            counts["loops"] += looped
            counts["kept"] += ok
            if ok and best is None:
                best = c
        picks.append(best)
    return picks, counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", required=True, help="prompt rows (IFEval schema, chats or prompt strings)")
    ap.add_argument("--reward", action="append", required=True, help="a reward SPEC as `train grpo` takes it")
    ap.add_argument("--out", required=True, help="the SFT rows to write (JSONL)")
    ap.add_argument("--model", help="model dir (default: SmolLM2)")
    ap.add_argument("--adapter", help="a run directory whose adapter answers")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-reward", type=float, default=1.0)
    a = ap.parse_args(argv)

    from localtune.data.prompts import read_prompt_set
    from localtune.fsutil import atomic_write_text
    from localtune.generate import Sampling, generate_batch
    from localtune.models import load_model, resolve_model
    from localtune.rewards import open_sources
    from localtune.rewards.source import score_all

    rows, _ = read_prompt_set(a.prompts)
    sources = open_sources(a.reward)
    model, tokenizer = load_model(resolve_model(a.model))
    if a.adapter:
        from localtune.lora import load_adapter

        load_adapter(model, a.adapter)
    started = time.time()
    sampling = Sampling(temperature=a.temperature, max_tokens=a.max_tokens, seed=a.seed).validate()
    answers = generate_batch(model, tokenizer, [r.messages for r in rows], sampling, n=a.n)
    seconds = time.time() - started
    answer_rows = [rows[c.prompt_index] for c in answers]
    total = score_all(sources, answer_rows, [r.prompt for r in answer_rows], [c.text for c in answers]).total
    picks, counts = pick_best(answers, total, a.n, a.min_reward)
    kept = [{"messages": [*rows[i].messages, {"role": "assistant", "content": c.text}]}
            for i, c in enumerate(picks) if c is not None]
    ended, looped, good = counts["ended"], counts["loops"], counts["kept"]
    atomic_write_text(a.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    n = len(answers)
    print(f"{n} answers in {seconds:.0f} s: ended {ended / n:.2f}, loops {looped / n:.2f}, "
          f"reward >= {a.min_reward:g} (ended, no loop) {good / n:.2f}; prompts kept {len(kept)}/{len(rows)} -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
