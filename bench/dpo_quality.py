"""Does DPO after SFT keep (or improve) the answers? The demo's recipe, judged by its answers.

    python bench/dpo_quality.py [--seeds 0 1 2] [--max-tokens 128] [--work DIR]
        [--variant NAME='--flag value ...' ...] [--no-default] [--json FILE]

For each seed s: SFT with samples/sft.yaml (seed s), then DPO from that adapter with
samples/dpo.yaml (seed s) and each --variant's extra `localtune train dpo` flags (e.g.
`--variant rpo1='--rpo-alpha 1'`, `--variant oldpairs='--data /tmp/old_train.jsonl'`). Validation and
checkpoints are off: the final adapters are judged.

Judge: localtune's eval with ONE loaded base model, adapters switched; greedy, --max-tokens (128),
the 6 held-out prompts of samples/sft/heldout_prompts.txt and the 40 validation rows of
samples/sft/valid.jsonl without their last answer, samples/pip_checks.yaml. Reported per seed and as
medians: ended, loops, the share of answers passing every Pip check ("passed"), mean tokens; and
whether each DPO variant is >= its SFT start on each (ended, passed up; loops down) and meets the
issue's demo target (ended >= 0.95, loops <= 0.05, passed >= 0.90). On the 30 held-out pairs of
samples/dpo/valid.jsonl: preference accuracy (log p(chosen) > log p(rejected), the demo's number)
and reward accuracy (DPO's implicit reward against the model it started from: the SFT adapter for
DPO, the base for SFT; what training reports as val_reward_accuracy).

Results are kept in --work (default /tmp/bench-dpo-quality): a rerun skips finished runs and
judgements (a changed command for the same run name is an error), so a long experiment survives an
interruption and new variants reuse the SFT adapters.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import localtune  # noqa: E402,F401

ROOT = common.ROOT
SFT_RECIPE = ROOT / "samples" / "sft.yaml"
DPO_RECIPE = ROOT / "samples" / "dpo.yaml"
HELDOUT = ROOT / "samples" / "sft" / "heldout_prompts.txt"
VALID = ROOT / "samples" / "sft" / "valid.jsonl"
CHECKS = ROOT / "samples" / "pip_checks.yaml"
PAIRS = ROOT / "samples" / "dpo" / "valid.jsonl"
TARGET = {"ended": (">=", 0.95), "loops": ("<=", 0.05), "passed": (">=", 0.90)}
METRICS = (("ended", "ended", ".2f"), ("loops", "loops", ".2f"), ("passed", "Pip checks passed", ".2f"),
           ("mean_tokens", "mean tokens", ".1f"), ("pref_acc", "pref. acc.", ".2f"),
           ("reward_acc", "reward acc.", ".2f"))


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--work", default="/tmp/bench-dpo-quality")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                   help="a DPO run with these extra flags (after samples/dpo.yaml)")
    p.add_argument("--no-default", action="store_true", help="leave out DPO with samples/dpo.yaml as it is")
    p.add_argument("--sft-flags", default="", help="extra flags for every SFT run (default: none)")
    p.add_argument("--json", help="also write every number here")
    return p.parse_args()


def variants(a) -> list[tuple[str, list[str]]]:
    out = [] if a.no_default else [("dpo", [])]
    for v in a.variant:
        name, _, flags = v.partition("=")
        out.append((f"dpo-{name}", shlex.split(flags)))
    return out


def train(work: Path, name: str, cmd: list[str]) -> Path:
    """Train one run unless `work` holds it finished with the same command."""
    out = work / name
    done = out.with_suffix(".done.json")
    if done.exists():
        if json.loads(done.read_text())["cmd"] != cmd:
            raise SystemExit(f"{done}: trained with another command; use another --work or name")
        return out
    if out.exists():  # an interrupted run: start it again
        shutil.rmtree(out)
    proc = common.run_child(cmd, log=out.with_suffix(".log"))
    from localtune.fsutil import atomic_write_json

    atomic_write_json(done, {"cmd": cmd, **proc})
    print(f"# trained {name}: {proc['wall_s']:.0f} s", file=sys.stderr, flush=True)
    return out


def sft_cmd(out: Path, seed: int, flags: list[str]) -> list[str]:
    return [sys.executable, "-m", "localtune", "train", "sft", "--config", str(SFT_RECIPE), "--out", str(out),
            "--seed", str(seed), "--eval-every", "0", "--save-every", "0", *flags]


def dpo_cmd(out: Path, seed: int, sft: Path, flags: list[str]) -> list[str]:
    return [sys.executable, "-m", "localtune", "train", "dpo", "--config", str(DPO_RECIPE), "--out", str(out),
            "--adapter", str(sft), "--seed", str(seed), "--eval-every", "0", "--save-every", "0", *flags]


class Judge:
    """One loaded base model; each adapter in turn answers the prompts."""

    def __init__(self, max_tokens: int):
        from localtune.data.prompts import read_data_prompts, read_prompt_file
        from localtune.eval import load_checks
        from localtune.generate import Sampling
        from localtune.models import load_model, resolve_model

        self.rows = read_prompt_file(HELDOUT) + read_data_prompts(VALID)[0]
        self.checks = load_checks(CHECKS)
        self.sampling = Sampling(temperature=0.0, max_tokens=max_tokens).validate()
        self.model, self.tokenizer = load_model(resolve_model(None))

    def __call__(self, name: str, adapter: Path | None, start: Path | None) -> dict:
        from localtune.eval import compare
        from localtune.eval.variants import Variant

        [result] = compare(self.model, self.tokenizer, self.rows, [Variant(name, adapter)], self.sampling,
                           checks=self.checks)
        s = result.summary()
        answers = [{"key": a.row.key, "response": a.completion.text, "ended": a.ended, "loops": a.loops,
                    "tokens": len(a.completion.token_ids), "checks": a.checks} for a in result.answers]
        margin, start_margin = self.margins(adapter), self.margins(start)
        return {"ended": s["ended"], "loops": s["loops"], "mean_tokens": s["mean_tokens"],
                "passed": sum(all(a["checks"].values()) for a in answers) / len(answers),
                "pref_acc": float((margin > 0).mean()),
                "reward_acc": None if adapter is None else float((margin - start_margin > 0).mean()),
                "checks": s["checks"], "seconds": s["seconds"], "answers": answers}

    def margins(self, adapter: Path | None):
        """log p(chosen) - log p(rejected) per held-out pair, with this adapter (None = the base)."""
        import numpy as np

        from localtune.data.preferences import load_pairs
        from localtune.eval.variants import AdapterSwitch, Variant
        from localtune.train.dpo import eval_pair_batches
        from localtune.lora import eval_mode
        from localtune.train.reference import sequence_logps

        AdapterSwitch(self.model).activate(Variant("pairs", adapter))
        pairs = load_pairs(str(PAIRS), self.tokenizer, max_seq_len=2048)
        out = []
        with eval_mode(self.model):
            for batch in eval_pair_batches(pairs, 8):
                lp, _ = sequence_logps(self.model, batch)
                b = len(batch.rows)
                out += list(np.array(lp[:b] - lp[b:]))
        return np.array(out)


def judged(box: list, a, name: str, adapter: Path | None, cache: Path, start: Path | None = None) -> dict:
    """`start`: the adapter this one was trained from (None = the base), for its reward accuracy."""
    if cache.exists():
        return json.loads(cache.read_text())
    if not box:
        box.append(Judge(a.max_tokens))
    res = box[0](name, adapter, start)
    from localtune.fsutil import atomic_write_json

    atomic_write_json(cache, res)
    print(f"# judged {name}: ended {res['ended']:.2f}, loops {res['loops']:.2f}, passed {res['passed']:.2f}, "
          f"reward acc. {common.fmt(res['reward_acc'], '.2f')} ({res['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return res


def meets_target(r: dict) -> bool:
    return all(r[k] >= v if op == ">=" else r[k] <= v for k, (op, v) in TARGET.items())


def not_worse(dpo: dict, sft: dict) -> bool:
    return dpo["ended"] >= sft["ended"] and dpo["passed"] >= sft["passed"] and dpo["loops"] <= sft["loops"]


def table(results: dict, base: dict, seeds: list[int]) -> list[str]:
    head = "| model | seed | " + " | ".join(label for _, label, _ in METRICS) + " | target | >= SFT |"
    lines = [head, "|---" * (len(METRICS) + 4) + "|"]

    def row(name, seed, r, vs=None):
        cells = [common.fmt(r.get(k), spec) for k, _, spec in METRICS]
        target = "yes" if meets_target(r) else "no"
        better = "-" if vs is None else ("yes" if not_worse(r, vs) else "no")
        return f"| {name} | {seed} | " + " | ".join(cells) + f" | {target} | {better} |"

    lines.append(row("base", "-", base))
    for name, per_seed in results.items():
        vs = results.get("sft") if name != "sft" else None
        lines += [row(name, s, per_seed[s], vs[s] if vs else None) for s in seeds]
        med = {k: common.median([per_seed[s][k] for s in seeds]) for k, _, _ in METRICS}
        hits = sum(meets_target(per_seed[s]) for s in seeds)
        wins = sum(not_worse(per_seed[s], vs[s]) for s in seeds) if vs else None
        lines.append(f"| **{name}** | **median** | " + " | ".join(common.fmt(med[k], spec) for k, _, spec in METRICS)
                     + f" | {hits}/{len(seeds)} | {'-' if wins is None else f'{wins}/{len(seeds)}'} |")
    return lines


def bad_answers(results: dict, seeds: list[int]) -> list[str]:
    """Which prompts looped, did not end or failed a check, in how many seeds."""
    out = []
    for name, per_seed in results.items():
        counts: dict[str, int] = {}
        for s in seeds:
            for ans in per_seed[s]["answers"]:
                what = [w for w, bad in (("loops", ans["loops"]), ("no end", not ans["ended"]))
                        if bad] + [c for c, ok in ans["checks"].items() if not ok]
                for w in what:
                    counts[f"{ans['key']} {w}"] = counts.get(f"{ans['key']} {w}", 0) + 1
        listed = ", ".join(f"{k} x{c}" for k, c in sorted(counts.items(), key=lambda kv: -kv[1])[:12]) or "none"
        out.append(f"- {name}: {listed}")
    return out


def main():
    a = parse()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    box: list = []
    runs = [("sft", None)] + variants(a)
    results: dict = {name: {} for name, _ in runs}
    for seed in a.seeds:  # each run is judged as soon as it is trained: results arrive as they can
        sft = train(work, f"sft-s{seed}", sft_cmd(work / f"sft-s{seed}", seed, shlex.split(a.sft_flags)))
        results["sft"][seed] = judged(box, a, "sft", sft, sft.with_suffix(f".judged-{a.max_tokens}.json"))
        for name, flags in runs[1:]:
            out = train(work, f"{name}-s{seed}", dpo_cmd(work / f"{name}-s{seed}", seed, sft, flags))
            results[name][seed] = judged(box, a, name, out, out.with_suffix(f".judged-{a.max_tokens}.json"), sft)
    base = judged(box, a, "base", None, work / f"base.judged-{a.max_tokens}.json")
    n = len(base["answers"])
    print(f"\n## Answers after SFT, then DPO from it (seeds {', '.join(map(str, a.seeds))})\n")
    print("\n".join(table(results, base, a.seeds)))
    print(f"\nJudged by localtune eval: greedy, max {a.max_tokens} tokens, {n} prompts (6 held-out + {n - 6} "
          "validation rows without their last answer), samples/pip_checks.yaml; 'passed' = every check. "
          "target: ended >= 0.95, loops <= 0.05, passed >= 0.90; '>= SFT': ended and passed >= and loops <= "
          "the SFT adapter it started from (same seed).")
    for name, flags in runs[1:]:
        print(f"- {name}: samples/dpo.yaml {' '.join(flags)}".rstrip())
    print("\nAnswers that looped, did not end or failed a check (key what x seeds):\n")
    print("\n".join(bad_answers(results, a.seeds)))
    if a.json:
        Path(a.json).write_text(json.dumps({"base": base, "runs": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
