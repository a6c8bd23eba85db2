"""Shared by the bench scripts: the deterministic data set, child processes measured one at a time,
medians and the printed table. Installs nothing; see bench/README.md for the peer's venv."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"
PEER_PY = os.environ.get("BENCH_PEER_PYTHON", "/tmp/peer/bin/python")

WORDS = ("north star wind sail chart reef tide compass harbor island current anchor deck storm "
         "lantern rope bearing coast fog gull keel mast wave dawn dusk").split()


def _answer(rng: random.Random, n: int) -> str:
    # A learnable pattern (counting, then a word walk) so the loss can fall within a few steps.
    start = rng.randrange(1, 50)
    nums = ", ".join(str(start + i) for i in range(n))
    walk = " ".join(WORDS[(start + i * 3) % len(WORDS)] for i in range(n // 2))
    return f"Counting from {start}: {nums}. Then the chart words: {walk}."


def chat_rows(n: int, seed: int) -> list[dict]:
    """Mixed-length single-turn chats, about 20 to 400 tokens (SmolLM2 tokenizer), deterministic."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        size = int(rng.choice((2, 4, 8, 16, 32, 64, 96)) * rng.uniform(0.7, 1.0)) + 1
        context = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 3 * size // 4 + 1)))
        prompt = f"Count {size} numbers and walk the chart. {context}".strip()
        rows.append({"messages": [{"role": "user", "content": prompt},
                                  {"role": "assistant", "content": _answer(rng, size)}]})
    return rows


def pair_rows(n: int, seed: int) -> list[dict]:
    """Preference pairs over the same prompts: chosen is the right count, rejected an off-by-one."""
    rng = random.Random(seed)
    out = []
    for row in chat_rows(n, seed):
        good = row["messages"][1]["content"]
        bad = good.replace(", ", "; ", rng.randrange(1, 4)).replace("Then", "And")
        out.append({"prompt": row["messages"][0]["content"], "chosen": good, "rejected": bad})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_child(cmd: list[str], env: dict | None = None, log: Path | None = None) -> dict:
    """Run one child to completion; its own peak RSS (wait4, not the cumulative RUSAGE_CHILDREN)."""
    out = open(log, "w") if log else subprocess.DEVNULL
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                            cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if log:
        out.close()
    if proc.returncode != 0:
        tail = log.read_text()[-3000:] if log else ""
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    rss = usage.ru_maxrss / 1e9 if sys.platform == "darwin" else usage.ru_maxrss * 1024 / 1e9
    return {"wall_s": wall, "rss_gb": rss}


def valid_loss(model, tokenizer, valid: Path, batch_size: int, max_seq_len: int) -> float:
    """Token-weighted loss over the assistant tokens of `valid` (localtune's evaluator), for the model
    as it is now (adapter on or off): both sides' adapters are scored by this one definition."""
    from localtune.data.batching import eval_batches
    from localtune.train.loop import evaluate
    from localtune.train.prepare import load_rows
    from localtune.train.sft import sft_loss

    rows, _ = load_rows(str(valid), tokenizer, role="valid", format=None, train_on_prompt=False,
                        overlong="truncate", on_event=lambda e: None, max_seq_len=max_seq_len)
    return evaluate(model, sft_loss, eval_batches(rows, batch_size))["val_loss"]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec=".3g"):
    return "-" if v is None else format(v, spec)


def print_table(title: str, rows: list[tuple[str, dict]], metrics: list[tuple[str, str, str]], notes: list[str]):
    """rows: (name, {metric: median}); the second row is the peer. One ratio column per localtune
    row: that row / the peer, for each metric."""
    print(f"\n## {title}\n")
    names = [n for n, _ in rows]
    peer = names[1]
    ours = [n for n in names if n != peer]
    ratio_heads = ["localtune / peer"] if len(ours) == 1 else [f"{n} / peer" for n in ours]
    print("| metric | " + " | ".join(names + ratio_heads) + " |")
    print("|---" * (len(names) + len(ours) + 1) + "|")
    base = dict(rows)
    for key, label, spec in metrics:
        vals = [base[n].get(key) for n in names]
        ratios = []
        for n in ours:
            lt, pv = base[n].get(key), base[peer].get(key)
            ratios.append(f"{lt / pv:.2f}×" if lt is not None and pv else "-")
        print(f"| {label} | " + " | ".join([fmt(v, spec) for v in vals] + ratios) + " |")
    for n in notes:
        print(f"\n{n}")


FORMAT_SYSTEM = "You are a careful assistant. Think briefly, then end with a line 'Answer: <number>'."


def format_prompts(n: int, seed: int) -> list[dict]:
    """Small arithmetic questions for online RL (GRPO) benches: a prompt, a system message and the
    answer, the shape mlx-lm-lora's GRPO data needs (localtune reads the same rows)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randrange(2, 60), rng.randrange(2, 60)
        rows.append({"prompt": f"A ship carries {a} crates and loads {b} more at the {rng.choice(WORDS)}. "
                               "How many crates are on board?", "answer": str(a + b), "system": FORMAT_SYSTEM})
    return rows
