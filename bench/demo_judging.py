"""The judging phase of `localtune demo`, the old way against the new (issue 11 §5: the demo under 15 min).

    python bench/demo_judging.py --sft RUN --dpo RUN [--order new,old] [--json FILE]

old: what the demo did before: each model (base, SFT, DPO) in turn answers the Pip prompts, then
     each in turn the IFEval prompts (six batched passes, each ending in its own tail of long
     answers); held-out preference accuracy by preference_report per adapter (the base scored again
     with each).
new: cli/demo_report.judge: all three models answer all prompts in ONE batched pass (each row with
     its own adapter, lora_routing); one preference pass per model.
Same runs, prompts (samples/), greedy, 128 tokens. Reported per side: wall seconds and CPU seconds
of this process (user + system, all threads; the load of a shared machine moves it less than the
wall clock), and how many answers are the same text on both sides.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import localtune  # noqa: E402,F401
from localtune.cli.demo_report import DemoSets, judge  # noqa: E402
from localtune.generate import Sampling  # noqa: E402

SAMPLES = ROOT / "samples"


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def old_judge(model_path, stages, sets: DemoSets, sampling) -> dict:
    """The demo's judging before this change, with today's functions called the way it called them."""
    from localtune.data.prompts import read_data_prompts, read_ifeval, read_prompt_file
    from localtune.eval import AdapterSwitch, Variant, compare, load_checks
    from localtune.models import load_model
    from localtune.train.dpo import preference_report

    pip_rows = read_prompt_file(sets.heldout) + read_data_prompts(sets.valid)[0]
    ifeval_rows = read_ifeval(str(sets.ifeval))
    checks = load_checks(sets.checks)
    variants = [Variant(name, Path(run) if run else None) for name, run in stages]
    model, tokenizer = load_model(model_path)
    out = {"pip": compare(model, tokenizer, pip_rows, variants, sampling, checks=checks),
           "ifeval": compare(model, tokenizer, ifeval_rows, variants, sampling), "preference": {}}
    switch = AdapterSwitch(model)
    for v in variants[1:]:
        switch.activate(v)
        report = preference_report(model, tokenizer, sets.pairs)
        out["preference"].setdefault("base", report["base"])
        out["preference"][v.name] = report["tuned"]
    return out


def texts(result: dict) -> dict:
    return {(key, e.name, i): a.completion.text for key in ("pip", "ifeval")
            for e in result[key] for i, a in enumerate(e.answers)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sft", required=True)
    p.add_argument("--dpo", required=True)
    p.add_argument("--model", help="default: the runs' base model")
    p.add_argument("--order", default="new,old")
    p.add_argument("--json")
    a = p.parse_args()
    from localtune.eval import model_for_runs

    model_path = a.model or model_for_runs([a.sft])
    sets = DemoSets(SAMPLES / "sft" / "heldout_prompts.txt", SAMPLES / "sft" / "valid.jsonl",
                    SAMPLES / "ifeval" / "heldout.jsonl", SAMPLES / "pip_checks.yaml", SAMPLES / "dpo" / "valid.jsonl")
    stages = [("base", None), ("SFT", a.sft), ("DPO", a.dpo)]
    sampling = Sampling(max_tokens=128)
    results, numbers = {}, {}
    for side in a.order.split(","):
        cpu, wall = cpu_seconds(), time.perf_counter()
        if side == "new":
            results[side] = judge(model_path, stages, sets, sampling)
        else:
            results[side] = old_judge(model_path, stages, sets, sampling)
        numbers[side] = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(cpu_seconds() - cpu, 1),
                         "preference": results[side]["preference"],
                         "pip": {e.name: {k: e.summary()[k] for k in ("checks_passed", "ended", "loops", "mean_tokens")}
                                 for e in results[side]["pip"]},
                         "ifeval": {e.name: e.summary()["prompt_strict"] for e in results[side]["ifeval"]}}
        print(side, json.dumps(numbers[side]), flush=True)
    if len(results) == 2:
        old, new = texts(results["old"]), texts(results["new"])
        same = sum(old[k] == new[k] for k in old)
        numbers["same_answers"] = f"{same}/{len(old)}"
        print(f"same answers: {same}/{len(old)}; differing: {[k for k in old if old[k] != new[k]][:10]}")
        print("| side | wall s | CPU s |\n|---|---|---|")
        for side in ("old", "new"):
            print(f"| {side} | {numbers[side]['wall_s']} | {numbers[side]['cpu_s']} |")
    if a.json:
        Path(a.json).write_text(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
