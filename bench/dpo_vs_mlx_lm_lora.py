"""DPO (sigmoid loss, LoRA): localtune vs mlx-lm-lora (`mlx_lm_lora.train --train-mode dpo`),
alternating, same model file, pairs, batch size (pairs), LoRA rank/scale/layers (all linear),
max length, optimizer (AdamW, wd 0, constant lr), beta and precision.

    LOCALTUNE_MODELS=/tmp/lt-models python bench/dpo_vs_mlx_lm_lora.py [--repeats 3] [--iters 8]

The peer needs its own venv (see bench/README.md): BENCH_PEER_PYTHON, default /tmp/peer/bin/python.
pairs/s = iters × batch / the side's training seconds (loading and validation excluded on both;
the peer runs without its validation set, see peer_mlx_lm_lora_modes.py). The peer computes the reference
live with a second model copy; localtune is run with --ref live (the same work per step) and, as a
third column, with its default --ref cached (reference log-probs computed once before training;
that time is in its wall seconds, not its training seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import localtune  # noqa: E402,F401


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iters", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=2, help="pairs per step")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--valid-rows", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-cached", action="store_true", help="skip the localtune --ref cached column")
    p.add_argument("--json")
    return p.parse_args()


def localtune_run(a, model, data: Path, out: Path, ref: str) -> dict:
    cmd = [sys.executable, "-m", "localtune", "train", "dpo", "--model", str(model),
           "--data", str(data / "train.jsonl"), "--valid", str(data / "valid.jsonl"), "--out", str(out),
           "--iters", str(a.iters), "--batch-size", str(a.batch_size), "--lr", str(a.lr), "--beta", str(a.beta),
           "--loss", "sigmoid", "--ref", ref, "--schedule", "constant", "--lora-rank", str(a.rank),
           "--lora-alpha", str(a.alpha), "--lora-layers", str(a.layers), "--max-seq-len", str(a.max_seq_len),
           "--seed", str(a.seed), "--eval-every", "0", "--save-every", "0"]
    proc = common.run_child(cmd, log=out.with_suffix(".log"))
    train = [e for e in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if e.get("event") == "train"]
    return {**proc, "train_s": train[-1]["elapsed"], "mlx_peak_gb": max(e["peak_memory_gb"] for e in train)}


def peer_run(a, model, data: Path, out: Path) -> dict:
    cfg = out.with_suffix(".yaml")
    cfg.write_text(json.dumps({"lora_parameters": {"rank": a.rank, "scale": a.alpha / a.rank, "dropout": 0.0},
                               "optimizer_config": {"adamw": {"weight_decay": 0.0}}, "fuse": False}))
    report = out.with_suffix(".json")
    cmd = [common.PEER_PY, str(common.ROOT / "bench" / "peer_mlx_lm_lora_modes.py"), "--train", "--train-mode", "dpo",
           "--model", str(model), "--data", str(data), "--iters", str(a.iters), "--batch-size", str(a.batch_size),
           "--num-layers", str(a.layers), "--max-seq-length", str(a.max_seq_len), "--optimizer", "adamw",
           "--learning-rate", str(a.lr), "--beta", str(a.beta), "--dpo-cpo-loss-type", "sigmoid",
           "--steps-per-report", str(a.iters), "--steps-per-eval", str(a.iters), "--val-batches", "-1",
           "--save-every", str(10**6), "--seed", str(a.seed), "-c", str(cfg), "--adapter-path", str(out)]
    env = {"BENCH_REPORT": str(report), "LD_PRELOAD": common.OPENBLAS}
    proc = common.run_child(cmd, env=env, log=out.with_suffix(".log"))
    rep = json.loads(report.read_text())
    last = rep["train"][-1]
    return {**proc, "train_s": a.iters / last["iterations_per_second"], "mlx_peak_gb": last["peak_memory"]}


def main():
    a = parse()
    from localtune.models import resolve_model

    model = resolve_model(a.model)
    tmp = Path(tempfile.mkdtemp(prefix="bench-dpo-"))
    data = tmp / "data"
    common.write_jsonl(data / "train.jsonl", common.pair_rows(a.iters * a.batch_size, a.seed))
    common.write_jsonl(data / "valid.jsonl", common.pair_rows(a.valid_rows, a.seed + 1))
    sides = ["localtune (ref live)", "mlx-lm-lora"] + ([] if a.no_cached else ["localtune (ref cached)"])
    runs = {s: [] for s in sides}
    for r in range(a.repeats):
        for side in (sides if r % 2 == 0 else sides[::-1]):
            out = tmp / f"{side.replace(' ', '_').replace('(', '').replace(')', '')}-{r}"
            res = (peer_run(a, model, data, out) if side == "mlx-lm-lora"
                   else localtune_run(a, model, data, out, "cached" if "cached" in side else "live"))
            res["pairs_s"] = a.iters * a.batch_size / res["train_s"]
            runs[side].append(res)
            print(f"# {side} run {r}: {res['pairs_s']:.3f} pairs/s, MLX peak {res['mlx_peak_gb']:.3f} GB, "
                  f"RSS {res['rss_gb']:.3f} GB", file=sys.stderr, flush=True)
    keys = ("pairs_s", "mlx_peak_gb", "rss_gb", "train_s", "wall_s")
    med = [(s, {k: common.median([x[k] for x in runs[s]]) for k in keys}) for s in sides]
    common.print_table(
        f"DPO (sigmoid, beta {a.beta}), {model.name}, {a.batch_size} pairs/step, rank {a.rank}, {a.layers} layers, "
        f"all linear, max len {a.max_seq_len}, float32; median of {a.repeats}",
        med,
        [("pairs_s", "pairs/s (training)", ".3f"), ("mlx_peak_gb", "MLX peak memory (GB)", ".3f"),
         ("rss_gb", "process peak RSS (GB)", ".3f"), ("train_s", "training seconds", ".1f"),
         ("wall_s", "process wall seconds", ".1f")],
        [f"Data: {a.iters * a.batch_size} generated preference pairs (bench/common.py, seed {a.seed}); "
         f"{a.iters} steps; {a.valid_rows} validation pairs."])
    if a.json:
        Path(a.json).write_text(json.dumps({"runs": runs, "median": dict(med)}, indent=1))


if __name__ == "__main__":
    main()
