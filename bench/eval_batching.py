"""Eval decoding: 50 prompts answered together (localtune.generate.generate_batch, mlx_lm's
BatchGenerator with a KV cache) vs one at a time (mlx_lm's stream_generate, what chat uses), greedy,
same model and prompts, alternating sides each repeat in one process.

    python bench/eval_batching.py [--prompts 50] [--max-tokens 128] [--batch-size 32] [--repeats 3]

The prompts are the samples' IFEval rows (held-out first, then train). Both sides decode greedily,
so they should write the same answers: the table also counts answers that differ (batching numerics:
padded attention over a batch sums in another order), and the speed-up is tokens/s over tokens/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import localtune  # noqa: E402,F401


def prompts(n: int) -> list[list[dict]]:
    rows = []
    for name in ("heldout", "train"):
        path = common.ROOT / "samples" / "ifeval" / f"{name}.jsonl"
        rows += [json.loads(line)["prompt"] for line in path.read_text().splitlines() if line.strip()]
    if n > len(rows):
        raise SystemExit(f"only {len(rows)} sample prompts")
    return [[{"role": "user", "content": p}] for p in rows[:n]]


def batched(model, tok, ps, sampling, batch_size):
    from localtune.generate import generate_batch

    out = generate_batch(model, tok, ps, sampling, batch_size=batch_size)
    return [o.text for o in out], sum(len(o.token_ids) for o in out)


def one_at_a_time(model, tok, ps, sampling):
    from localtune.generate import StreamStats, stream_answer

    texts, tokens = [], 0
    for p in ps:
        stats = StreamStats()
        texts.append("".join(stream_answer(model, tok, p, sampling, stats)))
        tokens += stats.tokens
    return texts, tokens


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--prompts", type=int, default=50)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    from localtune.generate import Sampling
    from localtune.models import load_model, resolve_model

    path = resolve_model(a.model)
    model, tok = load_model(path)
    ps = prompts(a.prompts)
    sampling = Sampling(max_tokens=a.max_tokens)
    sides = ["batched", "one at a time"]
    runs = {s: [] for s in sides}
    differ = []
    for r in range(a.repeats):
        texts = {}
        for side in (sides if r % 2 == 0 else sides[::-1]):
            wall, cpu = time.perf_counter(), time.process_time()
            texts[side], tokens = (batched(model, tok, ps, sampling, a.batch_size) if side == "batched"
                                   else one_at_a_time(model, tok, ps, sampling))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            runs[side].append({"wall_s": wall, "cpu_s": cpu, "tokens": tokens, "tps": tokens / wall,
                               "cpu_tps": tokens / cpu})
            print(f"# {side} run {r}: {wall:.1f} s wall, {cpu:.1f} s CPU, {tokens} tokens, "
                  f"{tokens / wall:.1f} tokens/s", file=sys.stderr, flush=True)
        differ.append(sum(x != y for x, y in zip(texts["batched"], texts["one at a time"])))
    keys = ("wall_s", "cpu_s", "tokens", "tps", "cpu_tps")
    med = [(s, {k: common.median([x[k] for x in runs[s]]) for k in keys}) for s in sides]
    common.print_table(
        f"Eval decoding, {path.name}, {a.prompts} prompts, greedy, max {a.max_tokens} tokens, batch size "
        f"{a.batch_size}; median of {a.repeats}", med,
        [("wall_s", "wall seconds", ".1f"), ("cpu_s", "CPU seconds (this process)", ".1f"),
         ("tokens", "tokens generated", ".0f"), ("tps", "tokens/s (wall)", ".1f"),
         ("cpu_tps", "tokens per CPU second", ".1f")],
        [f"Answers that differ between the two sides (greedy; per repeat): {differ} of {a.prompts}.",
         "The ratio column is batched / one at a time (for seconds lower is better). On shared cores the"
         " wall clock depends on the other processes; CPU seconds less so."])


if __name__ == "__main__":
    main()
