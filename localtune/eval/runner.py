"""Run an evaluation: generate every row's answer in batches, then judge it (IFEval instructions,
health, user checks, extra scorers). Returns results and emits events; never prints.

`evaluate` takes the model as it is (eval during training calls it with the adapter being trained);
`compare` puts one loaded model in the state of each Variant (base, each run's adapter) in turn.

Events: events.EvalProgress, stage "model" before a model answers, "generate" as answers finish,
"done" with the seconds and the headline numbers after it is judged.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol, Sequence

from localtune.data.example import Problem
from localtune.data.prompts import PromptRow, problems_error
from localtune.eval import health, ifeval
from localtune.eval.checks import UserCheck, run_checks
from localtune.eval.results import HEALTH_NUMBERS, IFEVAL_NUMBERS, Answer, ModelEval
from localtune.eval.variants import AdapterSwitch, Variant
from localtune.events import EvalProgress
from localtune.generate import Completion, Sampling, generate_batch
from localtune.lora_routing import routable, routed_adapters


class Scorer(Protocol):
    """An extra judge of answers (the place for a reward model, a judge model, ...): `score` gets a
    model's answers together (a model scores faster in batches) and returns one number per answer,
    stored as Answer.scores[name]; summary.json's "scores" has each model's mean."""

    name: str

    def score(self, answers: list[Answer]) -> list[float]: ...


def check_rows(rows: Sequence[PromptRow]) -> None:
    """DataError naming file:line for IFEval rows whose instructions cannot be checked; run before
    generating, so a typo costs seconds, not a whole generation."""
    problems = []
    for r in rows:
        if r.kind == "ifeval":
            found = ifeval.row_problems(r.instruction_id_list, r.kwargs, r.prompt)
            problems += [Problem(r.source, r.line, p) for p in found]
    if problems:
        raise problems_error(f"{len(problems)} IFEval instruction(s) cannot be checked:", problems)


def judge(model_name: str, row: PromptRow, completion: Completion, checks: Sequence[UserCheck] = ()) -> Answer:
    """Everything judged about one answer, scorers aside."""
    text = completion.text
    instructions = (ifeval.check(text, row.instruction_id_list, row.kwargs, row.prompt)
                    if row.kind == "ifeval" else [])
    return Answer(model_name, row, completion, health.loops(text), instructions,
                  run_checks(text, list(checks), row.kind))


def evaluate(model, tokenizer, rows: Sequence[PromptRow], sampling: Sampling | None = None, *,
             name: str = "model", adapter: str | None = None, checks: Sequence[UserCheck] = (),
             scorers: Sequence[Scorer] = (), batch_size: int | None = None,
             on_event: Callable[[dict], None] | None = None) -> ModelEval:
    """The model, as it is now, answers every row (batched); each answer is judged."""
    emit = on_event or (lambda e: None)
    started = time.perf_counter()
    emit(EvalProgress("model", name, adapter=adapter, rows=len(rows)).to_dict())

    def progress(done: int, total: int) -> None:
        emit(EvalProgress("generate", name, done=done, total=total).to_dict())

    completions = generate_batch(model, tokenizer, [r.messages for r in rows], sampling,
                                 batch_size=batch_size, on_progress=progress)
    return _judged(name, adapter, rows, completions, checks, scorers, started, emit)


def _judged(name: str, adapter: str | None, rows: Sequence[PromptRow], completions: Sequence[Completion],
            checks: Sequence[UserCheck], scorers: Sequence[Scorer], started: float, emit) -> ModelEval:
    """One model's answers judged and scored; the "done" event. `seconds`: since `started`."""
    answers = [judge(name, r, c, checks) for r, c in zip(rows, completions)]
    for scorer in scorers:
        values = list(scorer.score(answers))
        if len(values) != len(answers):
            raise ValueError(f"scorer {scorer.name!r} returned {len(values)} scores for {len(answers)} answers")
        for a, v in zip(answers, values):
            a.scores[scorer.name] = float(v)
    result = ModelEval(name, answers, adapter, time.perf_counter() - started)
    s = result.summary()
    emit(EvalProgress("done", name, seconds=result.seconds,
                      numbers={k: s[k] for k in IFEVAL_NUMBERS + HEALTH_NUMBERS}).to_dict())
    return result


def compare(model, tokenizer, rows: Sequence[PromptRow], variants: Sequence[Variant],
            sampling: Sampling | None = None, *, checks: Sequence[UserCheck] = (),
            scorers: Sequence[Scorer] = (), batch_size: int | None = None,
            on_event: Callable[[dict], None] | None = None, together: bool = False) -> list[ModelEval]:
    """Each variant (base, adapters) answers the same rows from ONE loaded model, in order.

    together: all variants answer in one batched pass, each row with its own adapter
    (lora_routing), where that is possible (plain LoRA adapters, no scorers: a scorer may use the
    loaded model); every ModelEval's `seconds` then counts from the start of that shared pass. Otherwise one variant
    after another."""
    check_rows(rows)
    if together and len(variants) > 1 and not scorers and routable([v.adapter for v in variants]):
        return _compare_together(model, tokenizer, rows, variants, sampling, checks, batch_size,
                                 on_event or (lambda e: None))
    switch = AdapterSwitch(model)
    results = []
    for v in variants:
        switch.activate(v)
        results.append(evaluate(model, tokenizer, rows, sampling, name=v.name,
                                adapter=str(v.adapter) if v.adapter else None, checks=checks,
                                scorers=scorers, batch_size=batch_size, on_event=on_event))
    return results


def _compare_together(model, tokenizer, rows, variants, sampling, checks, batch_size, emit) -> list[ModelEval]:
    started = time.perf_counter()
    names = "+".join(v.name for v in variants)
    emit(EvalProgress("model", names, rows=len(rows) * len(variants)).to_dict())

    def progress(done: int, total: int) -> None:
        emit(EvalProgress("generate", names, done=done, total=total).to_dict())

    n = len(rows)
    with routed_adapters(model, [v.adapter for v in variants]) as routed:
        completions = generate_batch(routed, tokenizer, [r.messages for r in rows] * len(variants), sampling,
                                     batch_size=batch_size, on_progress=progress,
                                     prompt_cache=lambda i: routed.prompt_cache(i // n))
    return [_judged(v.name, str(v.adapter) if v.adapter else None, rows, completions[k * n:(k + 1) * n], checks,
                    (), started, emit) for k, v in enumerate(variants)]
