"""Answer quality after LoRA SFT: localtune vs `mlx_lm lora`, same rows, settings and seeds, one judge.

    LOCALTUNE_MODELS=/tmp/lt-models python bench/quality_vs_mlx_lm.py [--seeds 0 1 2] [--max-tokens 128]
        [--work DIR] [--variant NAME='--flag ... ENV=VALUE' ...] [--no-peer] [--json FILE]

Both sides train on samples/sft (240 rows) with samples/sft.yaml's recipe (steps, batch, lr, cosine
with warm-up, LoRA rank/alpha/layers/targets, max length), seed s for repeat s, alternating who
goes first. The peer gets the same numbers: `--mask-prompt`, AdamW with weight decay 0, and the
schedule through its `lr_schedule` config (cosine_decay over iters - warmup steps after a linear
warm-up from 0, mlx_lm's own warm-up shape); it runs with OpenBLAS preloaded, as localtune does.
The recipe's `unlikelihood` term has no mlx_lm counterpart, so the side named localtune runs with
`--unlikelihood 0` (the same settings as the peer); `--variant demo='--unlikelihood 2'` measures the
demo's full recipe.

Every adapter (and the base model) is then judged by localtune's eval with ONE loaded base model,
adapters switched: greedy decoding, --max-tokens (128 by default), on the 6 held-out prompts of
samples/sft/heldout_prompts.txt and the 40 validation rows with their last assistant turn removed,
with samples/pip_checks.yaml. Reported per seed and as the median over seeds: ended, loops, the
share of answers passing every Pip check, mean answer tokens, and the validation loss (localtune's
evaluator, token-weighted over the assistant tokens, for both sides).

--variant adds localtune runs with extra train flags and/or environment variables (words of the
form NAME=VALUE in capitals are environment), e.g. --variant nowt=--no-weight-by-tokens
--variant nofast=LOCALTUNE_FAST_MATH=0, --variant mixed=BENCH_PATCHES=mixed (bench-only changes, see
bench/localtune_patched.py). Results are kept in --work (default /tmp/bench-quality):
a rerun with the same work folder skips what is done (a changed command for the same run name is an
error, not a silent reuse), so a long experiment survives an interruption.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import localtune  # noqa: E402,F401

ROOT = common.ROOT
RECIPE = ROOT / "samples" / "sft.yaml"
DATA = ROOT / "samples" / "sft"
HELDOUT = DATA / "heldout_prompts.txt"
CHECKS = ROOT / "samples" / "pip_checks.yaml"
PEER = "mlx_lm.lora"
METRICS = (("ended", "ended", ".2f"), ("loops", "loops", ".2f"), ("passed", "Pip checks passed", ".2f"),
           ("mean_tokens", "mean tokens", ".1f"), ("val_loss", "val loss", ".4f"))


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--iters", type=int, help="steps for both sides (default: the recipe's; shrink for a smoke run)")
    p.add_argument("--work", default="/tmp/bench-quality", help="runs and eval results (kept for reruns)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=SPEC",
                   help="an extra localtune side: train flags and ENV=VALUE words")
    p.add_argument("--no-default", action="store_true", help="leave out localtune's default recipe")
    p.add_argument("--no-peer", action="store_true", help="leave out mlx_lm.lora")
    p.add_argument("--json", help="also write every number here")
    return p.parse_args()


def recipe() -> dict:
    cfg = yaml.safe_load(RECIPE.read_text())
    if cfg.get("schedule", "cosine") != "cosine":
        raise SystemExit(f"{RECIPE}: the peer is configured for a cosine schedule")
    return cfg


def sides(a) -> list[tuple[str, list[str], dict]]:
    """(name, extra localtune flags, extra env); the peer is the side named PEER."""
    out = [] if a.no_default else [("localtune", [], {})]
    for v in a.variant:
        name, _, spec = v.partition("=")
        flags, env = [], {}
        for word in shlex.split(spec):
            key, eq, value = word.partition("=")
            if eq and key.isupper() and not key.startswith("-"):
                env[key] = value
            else:
                flags.append(word)
        out.append((f"localtune:{name}", flags, env))
    return out + ([] if a.no_peer else [(PEER, [], {})])


def localtune_cmd(cfg, out: Path, seed: int, flags: list[str], env: dict) -> list[str]:
    # The recipe file itself, so a change to the demo's recipe is what this bench measures; validation
    # and checkpoints off (the bench scores the final adapter itself). BENCH_PATCHES: bench-only
    # changes (bench/localtune_patched.py).
    entry = [str(ROOT / "bench" / "localtune_patched.py")] if env.get("BENCH_PATCHES") else ["-m", "localtune"]
    return [sys.executable, *entry, "train", "sft", "--config", str(RECIPE), "--model",
            str(cfg["_model"]), "--data", str(DATA / "train.jsonl"), "--valid", str(DATA / "valid.jsonl"),
            "--out", str(out), "--iters", str(cfg["iters"]), "--seed", str(seed), "--eval-every", "0", "--save-every", "0",
            "--unlikelihood", "0", *flags]  # a variant's own --unlikelihood comes later and wins


def peer_cmd(cfg, out: Path, seed: int) -> list[str]:
    iters, warmup, lr = int(cfg["iters"]), int(cfg.get("warmup", 0)), float(cfg["lr"])
    schedule = {"name": "cosine_decay", "arguments": [lr, max(iters - warmup, 1), 0.0]}
    if warmup:
        schedule.update(warmup=warmup, warmup_init=0.0)
    conf = out.with_suffix(".yaml")
    conf.write_text(json.dumps({  # JSON is YAML
        "lora_parameters": {"rank": int(cfg["lora_rank"]), "scale": float(cfg["lora_alpha"]) / int(cfg["lora_rank"]),
                            "dropout": float(cfg.get("lora_dropout", 0.0)), "keys": list(cfg["lora_targets"])},
        "optimizer_config": {"adamw": {"weight_decay": 0.0}},
        "lr_schedule": schedule}))
    return [sys.executable, str(ROOT / "bench" / "peer_mlx_lm_lora.py"), "--train", "--model", str(cfg["_model"]),
            "--data", str(DATA), "--iters", str(iters), "--batch-size", str(cfg["batch_size"]),
            "--num-layers", str(cfg["lora_layers"]), "--max-seq-length", str(cfg["max_seq_len"]),
            "--mask-prompt", "--optimizer", "adamw", "--learning-rate", str(lr), "--steps-per-report", str(iters),
            "--steps-per-eval", str(10**6), "--val-batches", "1", "--save-every", str(10**6),
            "--seed", str(seed), "-c", str(conf), "--adapter-path", str(out)]


def run_name(side: str, seed: int) -> str:
    return f"{side.replace(':', '-').replace('.', '_')}-s{seed}"


def train(cfg, work: Path, side: tuple, seed: int) -> Path:
    """Train one (side, seed) unless its finished run is in `work` with the same command."""
    name, flags, env = side
    out = work / run_name(name, seed)
    cmd = peer_cmd(cfg, out, seed) if name == PEER else localtune_cmd(cfg, out, seed, flags, env)
    env = {**env, "BENCH_REPORT": str(out.with_suffix(".json")), "LD_PRELOAD": common.OPENBLAS} \
        if name == PEER else env
    done = out.with_suffix(".done.json")
    spec = {"cmd": cmd, "env": env}
    if done.exists():
        recorded = json.loads(done.read_text())
        if recorded["spec"] != spec:
            raise SystemExit(f"{done}: trained with another command; use another --work")
        return out
    if out.exists():  # an interrupted run: start it again
        import shutil
        shutil.rmtree(out)
    proc = common.run_child(cmd, env=env, log=out.with_suffix(".log"))
    from localtune.fsutil import atomic_write_json
    atomic_write_json(done, {"spec": spec, **proc})
    print(f"# trained {out.name}: {proc['wall_s']:.0f} s", file=sys.stderr, flush=True)
    return out


class Judge:
    """One loaded base model; each adapter in turn answers the prompts and has its val loss taken."""

    def __init__(self, cfg, max_tokens: int):
        from localtune.data.prompts import read_data_prompts, read_prompt_file
        from localtune.eval import load_checks
        from localtune.generate import Sampling
        from localtune.models import load_model

        self.cfg = cfg
        self.rows = read_prompt_file(HELDOUT) + read_data_prompts(DATA / "valid.jsonl")[0]
        self.checks = load_checks(CHECKS)
        self.sampling = Sampling(temperature=0.0, max_tokens=max_tokens).validate()
        self.model, self.tokenizer = load_model(cfg["_model"])

    def __call__(self, name: str, adapter: Path | None) -> dict:
        from localtune.eval import compare
        from localtune.eval.variants import Variant

        [result] = compare(self.model, self.tokenizer, self.rows, [Variant(name, adapter)], self.sampling,
                           checks=self.checks)
        s = result.summary()  # the adapter stays active: the val loss is this model's
        answers = [{"key": a.row.key, "source": a.row.kind, "response": a.completion.text, "ended": a.ended,
                    "loops": a.loops, "tokens": len(a.completion.token_ids), "checks": a.checks}
                   for a in result.answers]
        return {"ended": s["ended"], "loops": s["loops"], "mean_tokens": s["mean_tokens"],
                "passed": sum(all(a["checks"].values()) for a in answers) / len(answers),
                "checks": s["checks"], "seconds": s["seconds"],
                "val_loss": common.valid_loss(self.model, self.tokenizer, DATA / "valid.jsonl",
                                              int(self.cfg["batch_size"]), int(self.cfg["max_seq_len"])),
                "answers": answers}


def judged(judge_box: list, cfg, a, name: str, adapter: Path | None, cache: Path) -> dict:
    """The cached judgement of one model, else judge it now (loading the base model once)."""
    if cache.exists():
        return json.loads(cache.read_text())
    if not judge_box:
        judge_box.append(Judge(cfg, a.max_tokens))
    res = judge_box[0](name, adapter)
    from localtune.fsutil import atomic_write_json
    atomic_write_json(cache, res)
    print(f"# judged {name}: ended {res['ended']:.2f}, loops {res['loops']:.2f}, passed {res['passed']:.2f}, "
          f"val {res['val_loss']:.4f} ({res['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return res


def table(results: dict, base: dict, seeds: list[int]) -> list[str]:
    head = "| model | seed | " + " | ".join(label for _, label, _ in METRICS) + " |"
    lines = [head, "|---" * (len(METRICS) + 2) + "|"]

    def row(name, seed, r):
        return f"| {name} | {seed} | " + " | ".join(common.fmt(r.get(k), spec) for k, _, spec in METRICS) + " |"

    lines.append(row("base", "-", base))
    for name, per_seed in results.items():
        lines += [row(name, s, per_seed[s]) for s in seeds]
        med = {k: common.median([per_seed[s][k] for s in seeds]) for k, _, _ in METRICS}
        lines.append(row(f"**{name}**", "**median**", med))
    return lines


def check_table(results: dict, base: dict, seeds: list[int]) -> list[str]:
    names = list(base["checks"])
    lines = ["| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|",
             "| base | " + " | ".join(common.fmt(base["checks"][c], ".2f") for c in names) + " |"]
    for name, per_seed in results.items():
        lines.append(f"| {name} | " + " | ".join(
            common.fmt(common.median([per_seed[s]["checks"][c] for s in seeds]), ".2f") for c in names) + " |")
    return lines


def short_key(answer: dict) -> str:
    """'heldout 3' / 'valid 12': which prompt, compactly."""
    return f"{answer['key'].split('_')[0].split('.')[0]} {answer['key'].rsplit(':', 1)[-1]}"


def looping(results: dict, seeds: list[int]) -> list[str]:
    """Which prompts looped (in how many seeds), and how many answers ran out of tokens without looping."""
    out = []
    for name, per_seed in results.items():
        counts: dict[str, int] = {}
        unended = 0
        for s in seeds:
            for ans in per_seed[s]["answers"]:
                if ans["loops"]:
                    counts[short_key(ans)] = counts.get(short_key(ans), 0) + 1
                elif not ans["ended"]:
                    unended += 1
        listed = ", ".join(f"{k} ×{c}" for k, c in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"
        out.append(f"- {name}: looped: {listed}; cut off without looping: {unended}")
    return out


def main():
    a = parse()
    from localtune.models import resolve_model

    cfg = recipe()
    if a.iters:
        cfg["iters"] = a.iters
    cfg["_model"] = resolve_model(None if cfg.get("model") in (None, "default") else cfg["model"])
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    order = sides(a)
    judge_box: list = []
    results = {name: {} for name, _, _ in order}
    for i, seed in enumerate(a.seeds):
        for side in (order if i % 2 == 0 else order[::-1]):  # alternate who goes first: the load drifts
            train(cfg, work, side, seed)
        for name, _, _ in order:
            out = work / run_name(name, seed)
            results[name][seed] = judged(judge_box, cfg, a, name, out,
                                         out.with_suffix(f".quality-{a.max_tokens}.json"))
    base = judged(judge_box, cfg, a, "base", None, work / f"base.quality-{a.max_tokens}.json")

    n = len(base["answers"])
    print(f"\n## Answers after LoRA SFT on samples/sft ({cfg['iters']} steps, lr {cfg['lr']}, "
          f"{cfg['schedule']}, warm-up {cfg.get('warmup', 0)}, batch {cfg['batch_size']}, rank {cfg['lora_rank']}, "
          f"alpha {cfg['lora_alpha']}, {cfg['lora_layers']} layers); seeds {', '.join(map(str, a.seeds))}\n")
    print("\n".join(table(results, base, a.seeds)))
    print(f"\nJudged by localtune eval: greedy, max {a.max_tokens} tokens, {n} prompts (6 held-out + "
          f"{n - 6} validation rows without their last answer), samples/pip_checks.yaml; 'Pip checks "
          "passed' = the share of answers passing every check. Val loss: localtune's evaluator.")
    print("\nPer check (median share passing):\n")
    print("\n".join(check_table(results, base, a.seeds)))
    print("\nAnswers that looped (prompt ×seeds) or were cut off at the token limit:\n")
    print("\n".join(looping(results, a.seeds) + looping({"base": {0: base}}, [0])))
    if PEER in results and not a.no_default:
        med = {name: {k: common.median([r[s][k] for s in a.seeds]) for k in ("passed", "loops")}
               for name, r in results.items()}
        ok = (med["localtune"]["passed"] >= med[PEER]["passed"] and med["localtune"]["loops"] <= med[PEER]["loops"])
        print(f"\nTarget (localtune >= peer on checks passed, <= on loops, medians): {'met' if ok else 'NOT met'}")
    if a.json:
        Path(a.json).write_text(json.dumps({"base": base, "runs": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
