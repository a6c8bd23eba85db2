"""Resident memory over a long run must stay flat (mlx-lm has had runs whose memory grows until
the machine falls over). Trains a tiny random model for --steps steps through the real session
(metrics file, checkpoints, events) and samples the current RSS (/proc/self/statm, not the peak).

    python bench/memory_flat.py [--steps 500] [--json]

Prints a table of RSS by step; --json prints {"rss_mb": {step: MB}} for tests/unit/test_faults_memory.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/tiny.py

import localtune  # noqa: E402,F401  (OpenBLAS before mlx)

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """Current resident set size (second field of statm, in pages)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def write_data(path: Path, n: int) -> None:
    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(n):
            words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(rng.randint(1, 8)))
            f.write(json.dumps({"messages": [{"role": "user", "content": f"q{i} {words}"},
                                             {"role": "assistant", "content": words}]}) + "\n")


def measure(steps: int, sample_at: list[int], workdir: Path) -> dict[int, float]:
    from tiny import make_tiny_model_dir

    from localtune.config import build_config
    from localtune.train.session import run_training
    from localtune.train.sft import sft_task

    model = make_tiny_model_dir(workdir / "model")
    write_data(workdir / "train.jsonl", 64)
    write_data(workdir / "valid.jsonl", 8)
    cfg = build_config(None, dict(model=str(model), data=str(workdir / "train.jsonl"),
                                  valid=str(workdir / "valid.jsonl"), out=str(workdir / "run"), iters=steps,
                                  batch_size=2, lr=1e-3, lora_rank=4, lora_layers=-1, report_every=1,
                                  eval_every=100, save_every=100, lora_dropout=0.1))
    samples: dict[int, float] = {}

    def on_event(e: dict) -> None:
        if e.get("event") == "train" and e["step"] in sample_at:
            samples[e["step"]] = rss_mb()

    run_training(cfg, sft_task, on_event=on_event)
    return samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    at = sorted({s for s in (1, 10, 50, 100, 200, 300, 400, args.steps) if s <= args.steps})
    with tempfile.TemporaryDirectory() as tmp:
        samples = measure(args.steps, at, Path(tmp))
    if args.json:
        print(json.dumps({"rss_mb": samples}))
        return 0
    base = samples.get(50) or samples[min(samples)]
    print(f"{'step':>6} {'rss MB':>9} {'vs step 50':>11}")
    for step, mb in sorted(samples.items()):
        print(f"{step:>6} {mb:>9.1f} {100 * (mb - base) / base:>+10.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
