"""Held-out preference accuracy: a reward model (`train reward`) vs DPO's implicit reward (`train dpo`)
trained on the same pairs with the same settings, over several seeds.

    python bench/reward_vs_dpo.py [--config samples/dpo.yaml] [--seeds 0 1] [--data F --valid F] [--lr X]

Both runs take every option of the config (default samples/dpo.yaml: SmolLM2-135M-Instruct,
samples/dpo/train.jsonl -> valid.jsonl, 30 steps of 4 pairs, lr 5e-5, LoRA r8 on 16 blocks); the
DPO-only options (beta, loss, ...) go to DPO alone. Accuracy = the share of validation pairs whose
chosen answer gets the higher reward: the reward model's head for one, β·log-ratio against the
reference (DPO's implicit reward) for the other, both from the run's last validation (val_*).
`--synthetic N` writes N + N/4 arithmetic pairs (a right sum vs a wrong one) and uses them instead.

The Pip samples mostly teach a format: in 21 of the 30 validation pairs the rejected answer lacks
Pip's "Aye! ... Fair winds! ⛵" shape; in the other 9 both answers have it and differ in content
(a wrong fact, an ignored instruction). The table also scores these two groups apart (`style`,
`content`), from each finished run's weights (DPO: preference_report's implicit reward against the
base; the reward model: its scores).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

import localtune  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "samples" / "dpo.yaml"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--data", help="training pairs (default: the config's)")
    p.add_argument("--valid", help="held-out pairs (default: the config's)")
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="use N arithmetic training pairs")
    p.add_argument("--iters", type=int, help="override the config's iters (both modes)")
    p.add_argument("--lr", type=float, help="override the config's lr (both modes)")
    p.add_argument("--rm-lr", type=float, help="the reward model's lr alone (default: the same as DPO's)")
    p.add_argument("--out", help="a JSON file for the numbers")
    return p.parse_args()


def arithmetic_pairs(n: int, seed: int) -> list[dict]:
    """Content, not format: 'What is a + b?' answered with the right sum vs an off-by-a-few one, in
    the same words, so only the number tells them apart."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randrange(2, 60), rng.randrange(2, 60)
        wrong = a + b + rng.choice((-10, -2, -1, 1, 2, 10))
        phrase = rng.choice(("{a} plus {b} is {s}.", "The answer is {s}.", "{a} + {b} = {s}"))
        rows.append({"prompt": f"What is {a} + {b}?", "chosen": phrase.format(a=a, b=b, s=a + b),
                     "rejected": phrase.format(a=a, b=b, s=wrong)})
    return rows


def pip_styled(text: str) -> bool:
    return text.startswith("Aye!") and text.rstrip().endswith("Fair winds! ⛵")


def split_by_style(valid: str, out_dir: Path) -> dict[str, Path]:
    """The validation pairs in two files: `style` (rejected lacks Pip's shape) and `content` (both
    have it). Empty dict when no pair has Pip's chosen shape (not the Pip samples)."""
    rows = [json.loads(line) for line in Path(valid).read_text().splitlines() if line.strip()]

    def answer(r, k):
        return r[k] if isinstance(r[k], str) else r[k][-1]["content"]

    if not any(pip_styled(answer(r, "chosen")) for r in rows):
        return {}
    groups = {"style": [r for r in rows if not pip_styled(answer(r, "rejected"))],
              "content": [r for r in rows if pip_styled(answer(r, "rejected"))]}
    files = {}
    for name, group in groups.items():
        files[name] = out_dir / f"valid-{name}.jsonl"
        files[name].write_text("".join(json.dumps(r) + "\n" for r in group))
    return files


def subset_accuracy(mode: str, run_dir: Path, files: dict[str, Path]) -> dict[str, float]:
    """Held-out accuracy of a finished run on each file (see split_by_style)."""
    from localtune.lora import load_adapter
    from localtune.models import load_model
    from localtune.reward.model import RewardModel
    from localtune.reward.score_file import score_file
    from localtune.runs import read_run
    from localtune.train.dpo import preference_report

    if not files:
        return {}
    if mode == "reward":
        rm = RewardModel.open(run_dir)
        return {name: score_file(rm, f).summary()["accuracy"] for name, f in files.items()}
    info = read_run(run_dir)
    model, tok = load_model(info.model)
    load_adapter(model, run_dir)
    max_len = int(info.config.get("max_seq_len") or 2048)
    return {name: preference_report(model, tok, f, max_seq_len=max_len)["reward"] for name, f in files.items()}


def run(mode: str, options: dict, out: Path) -> dict:
    from localtune.config import build_config
    from localtune.config_dpo import DPO_FIELDS, DPOConfig
    from localtune.config_reward import RewardConfig
    from localtune.train.dpo import dpo_task
    from localtune.train.reward import reward_task
    from localtune.train.session import run_training

    cls, task = (DPOConfig, dpo_task) if mode == "dpo" else (RewardConfig, reward_task)
    opts = {k: v for k, v in options.items() if mode == "dpo" or k not in DPO_FIELDS}
    cfg = build_config(None, {**opts, "out": str(out)}, cls=cls)
    events = []
    t = time.perf_counter()
    run_training(cfg, task, on_event=events.append)
    seconds = time.perf_counter() - t
    vals = [e for e in events if e["event"] == "val"]
    last = vals[-1]
    groups = subset_accuracy(mode, out, split_by_style(cfg.valid, out.parent))
    return {"mode": mode, "seed": cfg.seed, "lr": cfg.lr, "seconds": round(seconds, 1), "groups": groups,
            "val_accuracy": last["val_reward_accuracy"], "val_margin": last["val_reward_margin"],
            "val_loss": last["val_loss"], "val_loss_start": vals[0]["val_loss"],
            "curve": [(v["step"], round(v["val_reward_accuracy"], 4)) for v in vals]}


def main() -> int:
    args = parse()
    options = yaml.safe_load(Path(args.config).read_text())
    options = {k: v for k, v in options.items() if v is not None}
    for key in ("data", "valid"):
        if key in options and not Path(options[key]).is_absolute():
            options[key] = str(ROOT / options[key])
    tmp = Path(tempfile.mkdtemp(prefix="rm-vs-dpo-"))
    if args.synthetic:
        for name, n, seed in (("train", args.synthetic, 1), ("valid", max(args.synthetic // 4, 8), 2)):
            path = tmp / f"{name}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in arithmetic_pairs(n, seed)))
            options[name if name == "valid" else "data"] = str(path)
    options.update({k: v for k, v in (("data", args.data), ("valid", args.valid), ("iters", args.iters),
                                      ("lr", args.lr)) if v is not None})
    results = []
    for seed in args.seeds:
        for mode in ("dpo", "reward"):
            opts = {**options, "seed": seed}
            if mode == "reward" and args.rm_lr:
                opts["lr"] = args.rm_lr
            r = run(mode, opts, tmp / f"{mode}-{seed}")
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    print(f"\ndata: {options['data']} -> {options['valid']}; iters {options.get('iters')}, "
          f"batch {options.get('batch_size')}, LoRA r{options.get('lora_rank')} on {options.get('lora_layers')} blocks")
    names = list(results[0]["groups"])
    print(f"{'mode':8} {'seed':>4} {'lr':>8} {'val acc':>8} " + "".join(f"{n + ' acc':>12}" for n in names)
          + f" {'val margin':>11} {'val loss':>14} {'seconds':>8}")
    for r in results:
        print(f"{r['mode']:8} {r['seed']:>4} {r['lr']:>8.0e} {r['val_accuracy']:>8.3f} "
              + "".join(f"{r['groups'][n]:>12.3f}" for n in names)
              + f" {r['val_margin']:>11.3f} {r['val_loss_start']:>6.3f}->{r['val_loss']:<6.3f} {r['seconds']:>8.0f}")
    for mode in ("dpo", "reward"):
        accs = [r["val_accuracy"] for r in results if r["mode"] == mode]
        print(f"{mode}: mean val accuracy {statistics.mean(accs):.3f} over seeds {args.seeds}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
