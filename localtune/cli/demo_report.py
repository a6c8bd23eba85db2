"""The end of `localtune demo`: base, SFT and DPO judged by their answers, from ONE loaded model
(adapters switched), greedy: one table (Pip checks, ended, loops on the held-out and validation
prompts; IFEval on samples/ifeval/heldout.jsonl; held-out preference accuracy when asked), then the answers to
the held-out prompts side by side. The evaluations are written to the last run's eval/ folder."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from localtune.cli.eval_cmd import _fmt, _grid


@dataclass
class DemoSets:
    heldout: Path  # plain prompts, one a line (the answers shown side by side)
    valid: Path  # chat rows; their last answer is removed
    ifeval: Path  # IFEval-schema rows
    checks: Path  # the Pip checks
    pairs: Path | None = None  # held-out preference pairs


def judge(model_path, stages: list[tuple[str, Path | None]], sets: DemoSets, sampling, *, on_event=None) -> dict:
    """{"pip": [ModelEval], "ifeval": [ModelEval], "preference": {name: accuracy}, "out": folder}.

    Every model answers the Pip and the IFEval prompts in ONE batched pass, all models together
    (compare(together=True): each row decoded with its own adapter), so the batch stays full and
    only one tail of long answers is paid; the answers are then split into the two evaluations.
    Preference accuracy: one forward pass over the pairs per model."""
    from localtune.data.prompts import read_data_prompts, read_ifeval, read_prompt_file
    from localtune.eval import (AdapterSwitch, ModelEval, Variant, compare, default_out_dir, load_checks,
                                prepare_out_dir, write_results)
    from localtune.models import load_model
    from localtune.train.dpo import preference_accuracy

    pip_rows = read_prompt_file(sets.heldout) + read_data_prompts(sets.valid)[0]
    ifeval_rows = read_ifeval(str(sets.ifeval))
    checks = load_checks(sets.checks)  # they apply to the Pip rows only (their sources)
    variants = [Variant(name, Path(run) if run else None) for name, run in stages]
    model, tokenizer = load_model(model_path)
    evals = compare(model, tokenizer, pip_rows + ifeval_rows, variants, sampling, checks=checks,
                    on_event=on_event, together=True)
    n = len(pip_rows)
    out = {"pip": [ModelEval(e.name, e.answers[:n], e.adapter, e.seconds) for e in evals],
           "ifeval": [ModelEval(e.name, e.answers[n:], e.adapter, e.seconds) for e in evals],
           "preference": {}}
    if sets.pairs:
        switch = AdapterSwitch(model)
        for v in variants:
            switch.activate(v)
            out["preference"][v.name] = preference_accuracy(model, tokenizer, sets.pairs)
    last = next((run for _, run in reversed(stages) if run), None)
    meta = {"model_path": str(model_path), "sampling": sampling.to_dict(), "checks": [c.describe() for c in checks]}
    folder = default_out_dir(last)  # RUN/eval/<time>: a -pip and an -ifeval evaluation beside it
    for key, rows, sources in (("pip", pip_rows, [sets.heldout, sets.valid]), ("ifeval", ifeval_rows, [sets.ifeval])):
        where = prepare_out_dir(folder.with_name(f"{folder.name}-{key}"))
        write_results(where, out[key], {**meta, "prompt_sets": [{"source": str(s)} for s in sources],
                                        "rows": len(rows)})
    out["out"] = folder.parent
    return out


def table(result: dict) -> str:
    """One table: a column per model; the Pip prompts' numbers, IFEval's, preference accuracy."""
    pip = [(e.name, e.summary()) for e in result["pip"]]
    ifeval = [(e.name, e.summary()) for e in result["ifeval"]]
    n_pip, n_if = pip[0][1]["answers"], ifeval[0][1]["answers"]
    lines = [[f"held-out + validation prompts ({n_pip})"] + [""] * len(pip)]
    lines.append(["  Pip checks: every check passed"] + [_fmt(s["checks_passed"]) for _, s in pip])
    lines += [[f"    {c}"] + [_fmt(s["checks"].get(c)) for _, s in pip] for c in pip[0][1]["checks"]]
    lines += [["  ended (EOS before max tokens)"] + [_fmt(s["ended"]) for _, s in pip],
              ["  loops"] + [_fmt(s["loops"]) for _, s in pip],
              ["  mean answer tokens"] + [_fmt(s["mean_tokens"], ".1f") for _, s in pip],
              [f"IFEval held-out ({n_if} prompts)"] + [""] * len(pip)]
    for key, label in (("prompt_strict", "prompt-level strict"), ("prompt_loose", "prompt-level loose"),
                       ("instruction_strict", "instruction-level strict"),
                       ("instruction_loose", "instruction-level loose")):
        lines.append([f"  {label}"] + [_fmt(s[key]) for _, s in ifeval])
    if result["preference"]:
        lines.append(["held-out preference accuracy"] + [_fmt(result["preference"].get(n)) for n, _ in pip])
    return _grid(["answers"] + [n for n, _ in pip], lines)


def side_by_side(result: dict, limit: int | None = None) -> str:
    """Each held-out prompt (the plain-prompts rows) with every model's answer under it."""
    evals = result["pip"]
    rows = [a.row for a in evals[0].answers if a.row.kind == "prompts"][:limit]
    out = []
    for i, row in enumerate(rows):
        out.append(f"\n=== {row.prompt}")
        for e in evals:
            a = e.answers[i]
            marks = "".join(f" [{m}]" for m, bad in (("loops", a.loops), ("no end", not a.ended)) if bad)
            out.append(f"--- {e.name}{marks}\n{a.completion.text.strip()}")
    return "\n".join(out)


def report(model_path, stages, sets: DemoSets, sampling, *, on_event=None) -> str:
    """The demo's closing text: the table, where the files are, the answers."""
    started = time.perf_counter()
    result = judge(model_path, stages, sets, sampling, on_event=on_event)
    seconds = time.perf_counter() - started
    return (f"Answers judged: greedy, max {sampling.max_tokens} tokens, {sets.checks.name}; "
            f"{seconds:.0f} s (written to {result['out']})\n\n{table(result)}\n{side_by_side(result)}")
