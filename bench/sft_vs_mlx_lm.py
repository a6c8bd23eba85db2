"""LoRA SFT: localtune vs `mlx_lm lora`, alternating, on the same model file, rows, batch size,
LoRA rank/scale/layers/targets, max length, optimizer (AdamW, wd 0, constant lr) and precision.

    LOCALTUNE_MODELS=/tmp/lt-models python bench/sft_vs_mlx_lm.py [--repeats 3] [--iters 24]

Each side trains exactly one epoch of the same rows (iters × batch rows), so both see the same
real tokens; tokens/s = those tokens / the side's own training seconds (model loading and
validation excluded on both). Validation loss: both adapters are scored by one evaluator
(localtune's, token-weighted over the assistant tokens) so the definitions match.
The peer runs with OpenBLAS preloaded (LD_PRELOAD), as localtune does; --peer-no-preload adds
the peer as installed (MLX's bundled reference BLAS).
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
from localtune.lora import ALL_LINEAR  # noqa: E402


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model dir (default: localtune's SmolLM2-135M-Instruct f32)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iters", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--valid-rows", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pack", action="store_true", help="localtune packs rows into --max-seq-len sequences")
    p.add_argument("--peer-no-preload", action="store_true", help="also run the peer without OpenBLAS")
    p.add_argument("--json", help="also write the medians here")
    return p.parse_args()


def localtune_run(a, model, data: Path, out: Path, seed: int) -> dict:
    cmd = [sys.executable, "-m", "localtune", "train", "sft", "--model", str(model),
           "--data", str(data / "train.jsonl"), "--valid", str(data / "valid.jsonl"), "--out", str(out),
           "--epochs", "1", "--batch-size", str(a.batch_size), "--lr", str(a.lr),
           "--schedule", "constant", "--lora-rank", str(a.rank), "--lora-alpha", str(a.alpha),
           "--lora-layers", str(a.layers), "--max-seq-len", str(a.max_seq_len), "--seed", str(seed),
           "--eval-every", "0", "--save-every", "0"] + (["--pack"] if a.pack else [])
    proc = common.run_child(cmd, log=out.with_suffix(".log"))
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [e for e in events if e.get("event") == "train"]
    return {**proc, "train_s": train[-1]["elapsed"], "tokens": train[-1]["tokens"],
            "mlx_peak_gb": max(e["peak_memory_gb"] for e in train), "adapter": out}


def peer_run(a, model, data: Path, out: Path, preload: bool, seed: int) -> dict:
    cfg = out.with_suffix(".yaml")
    scale = a.alpha / a.rank  # mlx_lm's `scale` is localtune's alpha / rank
    cfg.write_text(json.dumps({  # JSON is YAML
        "lora_parameters": {"rank": a.rank, "scale": scale, "dropout": 0.0, "keys": list(ALL_LINEAR)},
        "optimizer_config": {"adamw": {"weight_decay": 0.0}}}))
    report = out.with_suffix(".json")
    cmd = [sys.executable, str(common.ROOT / "bench" / "peer_mlx_lm_lora.py"), "--train", "--model", str(model),
           "--data", str(data), "--iters", str(a.iters), "--batch-size", str(a.batch_size),
           "--num-layers", str(a.layers), "--max-seq-length", str(a.max_seq_len), "--mask-prompt",
           "--optimizer", "adamw", "--learning-rate", str(a.lr), "--steps-per-report", str(a.iters),
           "--steps-per-eval", str(a.iters), "--val-batches", "-1", "--save-every", str(10**6),
           "--seed", str(seed), "-c", str(cfg), "--adapter-path", str(out)]
    env = {"BENCH_REPORT": str(report), "LD_PRELOAD": common.OPENBLAS if preload else ""}
    proc = common.run_child(cmd, env=env, log=out.with_suffix(".log"))
    rep = json.loads(report.read_text())["train"][-1]
    # One report covering every step: its it/s gives the training seconds (validation excluded).
    return {**proc, "train_s": a.iters / rep["iterations_per_second"], "mlx_peak_gb": rep["peak_memory"],
            "adapter": out}


def val_loss(model_path, data: Path, adapter: Path, a) -> float:
    from localtune.lora import load_adapter
    from localtune.models import load_model

    model, tok = load_model(model_path)
    load_adapter(model, adapter)
    return common.valid_loss(model, tok, data / "valid.jsonl", a.batch_size, a.max_seq_len)


def real_tokens(model_path, path: Path, max_seq_len: int) -> tuple[int, int, int]:
    from localtune.models import load_tokenizer_only
    from localtune.train.prepare import load_rows

    rows, _ = load_rows(str(path), load_tokenizer_only(str(model_path)), role="train", format=None,
                        train_on_prompt=False, max_seq_len=max_seq_len, overlong="truncate", on_event=lambda e: None)
    lengths = [len(ids) for ids, _ in rows]
    return sum(lengths), min(lengths), max(lengths)


def predict(a, model, data: Path) -> dict:
    """`localtune plan` for the same run, with the matmul rate measured now (same contention)."""
    from localtune.config import TrainConfig
    from localtune.plan import plan

    cfg = TrainConfig(model=str(model), data=str(data / "train.jsonl"), batch_size=a.batch_size,
                      lora_rank=a.rank, lora_alpha=a.alpha, lora_layers=a.layers, max_seq_len=a.max_seq_len,
                      seed=a.seed, pack=a.pack)
    return plan(cfg)


def plan_note(p: dict, lt: dict) -> str:
    flops = p["step_gflop_per_epoch"] / lt["train_s"]
    return (f"localtune plan predicted: MLX peak {p['peak_memory_gb']:.3f} GB "
            f"({p['peak_memory_gb'] / lt['mlx_peak_gb']:.2f}× measured), {p['tokens_per_sec']:.0f} tokens/s "
            f"({p['tokens_per_sec'] / lt['tok_s']:.2f}× measured). Achieved: {flops:.1f} GFLOP/s of model FLOPs "
            f"= {flops / p['matmul_gflops']:.2f} of the measured f32 matmul rate ({p['matmul_gflops']:.0f} GFLOP/s).")


def main():
    a = parse()
    from localtune.models import resolve_model

    model = resolve_model(a.model)
    tmp = Path(tempfile.mkdtemp(prefix="bench-sft-"))
    data = tmp / "data"
    common.write_jsonl(data / "train.jsonl", common.chat_rows(a.iters * a.batch_size, a.seed))
    common.write_jsonl(data / "valid.jsonl", common.chat_rows(a.valid_rows, a.seed + 1))
    tokens, shortest, longest = real_tokens(model, data / "train.jsonl", a.max_seq_len)
    predicted = predict(a, model, data)

    sides = [("localtune", None), ("mlx_lm.lora", True)] + ([("mlx_lm.lora (no OpenBLAS)", False)]
                                                             if a.peer_no_preload else [])
    runs = {name: [] for name, _ in sides}
    for r in range(a.repeats):
        order = sides if r % 2 == 0 else sides[::-1]  # alternate who goes first: contention drifts
        for name, preload in order:
            out = tmp / f"{name.split()[0].replace('.', '_')}-{'blas' if preload is not False else 'ref'}-{r}"
            # Repeat r trains both sides with seed + r (LoRA init, batch order): the medians are over
            # orders, so one lucky or unlucky order does not decide the val-loss comparison.
            res = (localtune_run(a, model, data, out, a.seed + r) if preload is None
                   else peer_run(a, model, data, out, preload, a.seed + r))
            res["tok_s"] = tokens / res["train_s"]
            res["val_loss"] = val_loss(model, data, res.pop("adapter"), a)
            runs[name].append(res)
            print(f"# {name} run {r}: {res['tok_s']:.0f} tok/s, MLX peak {res['mlx_peak_gb']:.3f} GB, "
                  f"RSS {res['rss_gb']:.3f} GB, val {res['val_loss']:.4f}", file=sys.stderr, flush=True)

    keys = ("tok_s", "mlx_peak_gb", "rss_gb", "val_loss", "train_s", "wall_s")
    med = [(name, {k: common.median([x[k] for x in runs[name]]) for k in keys}) for name, _ in sides]
    common.print_table(
        f"LoRA SFT, {model.name}, batch {a.batch_size}, rank {a.rank}, {a.layers} layers, all linear, "
        f"max len {a.max_seq_len}, float32{', localtune packed' if a.pack else ''}; median of {a.repeats}",
        med,
        [("tok_s", "real tokens/s (training)", ".0f"), ("mlx_peak_gb", "MLX peak memory (GB)", ".3f"),
         ("rss_gb", "process peak RSS (GB)", ".3f"),
         ("val_loss", f"val loss after {tokens} tokens", ".4f"), ("train_s", "training seconds", ".1f"),
         ("wall_s", "process wall seconds", ".1f")],
        [f"Data: {a.iters * a.batch_size} generated chat rows (bench/common.py, seed {a.seed}), "
         f"{shortest}-{longest} tokens, {tokens} real tokens in one epoch; {a.valid_rows} validation rows.",
         "Val loss: both adapters scored by localtune's evaluator on the same rows (assistant tokens).",
         plan_note(predicted, dict(med)["localtune"])])
    if a.json:
        Path(a.json).write_text(json.dumps({"runs": runs, "median": dict(med)}, default=str, indent=1))


if __name__ == "__main__":
    main()
