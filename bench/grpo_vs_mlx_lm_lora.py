"""GRPO (LoRA): localtune vs mlx-lm-lora (`mlx_lm_lora.train --train-mode grpo`), alternating, same
model file, prompts (a system and a user message, rendered by the model's chat template on both
sides), group size, max completion length, sampling (temperature; top-p 0.95 and top-k 20, the
peer's fixed values), KL beta, LoRA rank/scale/layers (all linear), optimizer (AdamW, wd 0,
constant lr), precision, and one format reward (bench/grpo_format_reward.py: an 'Answer:' line).

    LOCALTUNE_MODELS=/tmp/lt-models python bench/grpo_vs_mlx_lm_lora.py [--repeats 3] [--iters 4]

The peer needs its own venv (see bench/README.md): BENCH_PEER_PYTHON, default /tmp/peer/bin/python.
prompts/s = iters × batch / the side's training seconds: every step of the loop (generating the
answers, rewarding them, the reference pass, the update), loading excluded on both. Memory: the MLX
peak from when training starts (the weights included) and the process's peak RSS. The peer keeps a
second model copy as its KL reference; localtune switches the adapter off in the one model. The
peer decodes --batch-size answers at a time; localtune decodes all of a step's answers together.

Also measured for localtune: the share of step time spent generating (its generate_seconds metric),
and in a separate child the decode rate of one step's answers (batch × group) decoded together
(generate_batch) against one at a time (stream_answer, mlx_lm's single-sequence decoder).
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

REWARD_FILE = common.ROOT / "bench" / "grpo_format_reward.py"
TOP_P, TOP_K = 0.95, 20  # mlx-lm-lora's GRPO sampling, not settable from its command line


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iters", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=2, help="prompts per step")
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--max-completion", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--beta", type=float, default=0.04, help="KL weight (both sides compute a reference pass)")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    p.add_argument("--decode-child", metavar="OUT", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    return p.parse_args()


def localtune_run(a, model, data: Path, out: Path) -> dict:
    cfg = out.with_suffix(".yaml")
    cfg.write_text("report_every: 1\n")  # every step's generate_seconds
    cmd = [sys.executable, "-m", "localtune", "train", "grpo", "--model", str(model),
           "--prompts", str(data / "train.jsonl"), "--reward", f"python:{REWARD_FILE}:format_reward",
           "--out", str(out), "--config", str(cfg), "--iters", str(a.iters), "--batch-size", str(a.batch_size),
           "--group-size", str(a.group_size), "--max-completion", str(a.max_completion),
           "--temperature", str(a.temperature), "--top-p", str(TOP_P), "--top-k", str(TOP_K),
           "--kl-beta", str(a.beta), "--truncated", "keep", "--lr", str(a.lr), "--schedule", "constant",
           "--lora-rank", str(a.rank), "--lora-alpha", str(a.alpha), "--lora-layers", str(a.layers),
           "--max-seq-len", "512", "--seed", str(a.seed), "--eval-every", "0", "--save-every", "0"]
    proc = common.run_child(cmd, log=out.with_suffix(".log"))
    train = [e for e in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if e.get("event") == "train"]
    elapsed = train[-1]["elapsed"]
    return {**proc, "train_s": elapsed, "mlx_peak_gb": max(e["peak_memory_gb"] for e in train),
            "generate_share": sum(e["generate_seconds"] for e in train) / elapsed,
            "answer_tokens": sum(e["answer_tokens"] for e in train) / len(train)}


def peer_run(a, model, data: Path, out: Path) -> dict:
    cfg = out.with_suffix(".yaml")
    cfg.write_text(json.dumps({"lora_parameters": {"rank": a.rank, "scale": a.alpha / a.rank, "dropout": 0.0},
                               "optimizer_config": {"adamw": {"weight_decay": 0.0}}, "fuse": False}))
    report = out.with_suffix(".json")
    cmd = [common.PEER_PY, str(common.ROOT / "bench" / "peer_mlx_lm_lora_modes.py"), "--train", "--train-mode", "grpo",
           "--model", str(model), "--data", str(data), "--iters", str(a.iters), "--batch-size", str(a.batch_size),
           "--group-size", str(a.group_size), "--max-completion-length", str(a.max_completion),
           "--temperature", str(a.temperature), "--beta", str(a.beta), "--num-layers", str(a.layers),
           "--max-seq-length", "512", "--optimizer", "adamw", "--learning-rate", str(a.lr),
           "--reward-functions-file", str(REWARD_FILE), "--reward-functions", "bench_format",
           "--steps-per-report", str(a.iters), "--steps-per-eval", str(10**6), "--save-every", str(10**6),
           "--seed", str(a.seed), "-c", str(cfg), "--adapter-path", str(out)]
    env = {"BENCH_REPORT": str(report), "LD_PRELOAD": common.OPENBLAS}
    proc = common.run_child(cmd, env=env, log=out.with_suffix(".log"))
    last = json.loads(report.read_text())["train"][-1]
    return {**proc, "train_s": a.iters / last["iterations_per_second"], "mlx_peak_gb": last["peak_memory"],
            "answer_tokens": last.get("train_average_generated_tokens")}


def decode_child(a) -> None:
    """One step's answers decoded together vs one at a time, with the base model (a child process,
    so the numbers do not depend on what ran before in this one)."""
    from localtune.generate import Sampling, StreamStats, generate_batch, stream_answer
    from localtune.models import load_model

    rows = [json.loads(line) for line in Path(a.data).read_text().splitlines()][: a.batch_size]
    prompts = [[{"role": "system", "content": r["system"]}, {"role": "user", "content": r["prompt"]}] for r in rows]
    model, tok = load_model(a.model)
    sampling = Sampling(temperature=a.temperature, top_p=TOP_P, top_k=TOP_K, max_tokens=a.max_completion,
                        seed=a.seed)
    generate_batch(model, tok, prompts[:1], Sampling(max_tokens=4))  # warm-up: first-call setup
    t = time.perf_counter()
    together = generate_batch(model, tok, prompts, sampling, n=a.group_size)
    together_s = time.perf_counter() - t
    t, alone = time.perf_counter(), 0
    for i, p in enumerate(prompts):
        for j in range(a.group_size):
            stats = StreamStats()
            for _ in stream_answer(model, tok, p, Sampling(**{**sampling.to_dict(), "seed": a.seed + i * 100 + j}),
                                   stats):
                pass
            alone += stats.tokens
    alone_s = time.perf_counter() - t
    tokens = sum(len(c.token_ids) for c in together)
    Path(a.decode_child).write_text(json.dumps({"together_tps": tokens / together_s, "alone_tps": alone / alone_s,
                                                "together_tokens": tokens, "alone_tokens": alone}))


def decode_run(a, model, data: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--decode-child", str(out), "--model", str(model), "--data",
           str(data / "train.jsonl"), "--batch-size", str(a.batch_size), "--group-size", str(a.group_size),
           "--max-completion", str(a.max_completion), "--temperature", str(a.temperature), "--seed", str(a.seed)]
    common.run_child(cmd, log=out.with_suffix(".log"))
    return json.loads(out.read_text())


def main():
    a = parse()
    if a.decode_child:
        return decode_child(a)
    from localtune.models import resolve_model

    model = resolve_model(a.model)
    tmp = Path(tempfile.mkdtemp(prefix="bench-grpo-"))
    data = tmp / "data"
    common.write_jsonl(data / "train.jsonl", common.format_prompts(a.iters * a.batch_size, a.seed))
    sides = ["localtune", "mlx-lm-lora"]
    runs = {s: [] for s in sides}
    decode = []
    for r in range(a.repeats):
        for side in (sides if r % 2 == 0 else sides[::-1]):
            out = tmp / f"{side}-{r}"
            res = peer_run(a, model, data, out) if side == "mlx-lm-lora" else localtune_run(a, model, data, out)
            res["prompts_s"] = a.iters * a.batch_size / res["train_s"]
            runs[side].append(res)
            print(f"# {side} run {r}: {res['prompts_s']:.3f} prompts/s, MLX peak {res['mlx_peak_gb']:.3f} GB, "
                  f"RSS {res['rss_gb']:.3f} GB", file=sys.stderr, flush=True)
        decode.append(decode_run(a, model, data, tmp / f"decode-{r}.json"))
        print(f"# decode {r}: {decode[-1]['together_tps']:.1f} tok/s together, {decode[-1]['alone_tps']:.1f} "
              "one at a time", file=sys.stderr, flush=True)
    keys = ("prompts_s", "mlx_peak_gb", "rss_gb", "train_s", "wall_s", "answer_tokens")
    med = [(s, {k: common.median([x.get(k) for x in runs[s]]) for k in keys}) for s in sides]
    share = common.median([x["generate_share"] for x in runs["localtune"]])
    together = common.median([d["together_tps"] for d in decode])
    alone = common.median([d["alone_tps"] for d in decode])
    common.print_table(
        f"GRPO, {model.name}, {a.batch_size} prompts/step x group {a.group_size}, max completion "
        f"{a.max_completion}, temperature {a.temperature}, beta {a.beta}, rank {a.rank}, {a.layers} layers, "
        f"all linear, float32; median of {a.repeats}",
        med,
        [("prompts_s", "prompts/s (training)", ".3f"), ("mlx_peak_gb", "MLX peak memory (GB)", ".3f"),
         ("rss_gb", "process peak RSS (GB)", ".3f"), ("train_s", "training seconds", ".1f"),
         ("wall_s", "process wall seconds", ".1f"), ("answer_tokens", "mean answer tokens", ".1f")],
        [f"Data: {a.iters * a.batch_size} arithmetic prompts with a system message (bench/common.py, seed "
         f"{a.seed}); {a.iters} steps; reward: an 'Answer:' line (bench/grpo_format_reward.py).",
         f"localtune: {share:.0%} of step time generating; decode of one step's {a.batch_size * a.group_size} "
         f"answers: {together:.1f} tokens/s together vs {alone:.1f} one at a time "
         f"({together / alone:.2f}x)."])
    if a.json:
        Path(a.json).write_text(json.dumps({"runs": runs, "decode": decode, "median": dict(med),
                                            "generate_share": share}, indent=1))


if __name__ == "__main__":
    main()
