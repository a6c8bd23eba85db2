"""Candidate answers for a feedback session: each prompt answered n times (2..4) by one model
(optionally with a run's adapter), exact duplicates dropped, the rest shuffled so their order says
nothing about how they were made.

Different answers come from sampling: every draw has its own place in the keyed random stream of
localtune.generate (one seed per round and temperature), and `temperatures` gives each candidate
slot its own temperature (e.g. 0.3, 0.7, 1.0 for a cautious, a middle and a bold answer). A prompt
left with fewer than n distinct answers is drawn again for the missing ones (`retries` rounds);
one that still has fewer than two distinct, non-empty answers has nothing to compare and is left
out (counted in the manifest).
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from localtune import events
from localtune.errors import LocaltuneError
from localtune.feedback.session import Candidate, FeedbackSession, PromptItem, item_id

MIN_CANDIDATES, MAX_CANDIDATES = 2, 4
SAMPLING_DEFAULTS = {"temperature": 0.8, "top_p": 0.95}  # unset flags: varied answers, not greedy
DEFAULT_RETRIES = 2
RUN_PROMPTS = 16  # prompts sampled for "rate answers of this run" when no prompt file is given


def check_n(n: int, temperatures: Sequence[float] | None = None) -> int:
    if temperatures:
        n = len(temperatures)
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_CANDIDATES <= n <= MAX_CANDIDATES:
        raise LocaltuneError(f"--n {n!r}: candidates per prompt must be {MIN_CANDIDATES}..{MAX_CANDIDATES} "
                             "(the keys 1-4 pick them)")
    return n


def _slot_temperatures(sampling, n: int, temperatures: Sequence[float] | None) -> list[float]:
    temps = [float(t) for t in temperatures] if temperatures else [sampling.temperature] * n
    for t in temps:
        replace(sampling, temperature=t).validate()
    if all(t == 0 for t in temps):
        raise LocaltuneError("greedy decoding (temperature 0) gives the same answer every time: set "
                             "--temperature above 0, or --temperatures with at least one above 0")
    return temps


def sample_candidates(model, tokenizer, rows: Sequence, sampling, n: int, *,
                      temperatures: Sequence[float] | None = None, retries: int = DEFAULT_RETRIES,
                      batch_size: int | None = None, on_event: Callable[[dict], None] = events.ignore,
                      model_name: str | None = None) -> tuple[list[PromptItem], dict]:
    """(items, stats): PromptItems with 2..n distinct answers each, and what was dropped.
    `rows` are PromptRows (localtune.data.prompts) or chat message lists."""
    from localtune.generate import generate_batch

    n = check_n(n, temperatures)
    sampling = sampling.validate()
    temps = _slot_temperatures(sampling, n, temperatures)
    messages = [getattr(r, "messages", r) for r in rows]
    found: list[list[Candidate]] = [[] for _ in messages]
    seen: list[set[str]] = [set() for _ in messages]
    stats = {"prompts": len(messages), "answers": 0, "duplicates": 0, "empty": 0, "unfinished": 0}
    total = len(messages) * n
    on_event(events.FeedbackProgress("sample", "start", 0, total, model_name).to_dict())
    start, done = time.time(), 0
    for round_ in range(retries + 1):
        # Each missing slot of each prompt is one request; distinct temperatures are separate calls.
        wanted: dict[float, list[int]] = {}
        for i, have in enumerate(found):
            missing = n - len(have)
            slot_temps = temps[len(have):] if round_ == 0 else [t for t in temps if t > 0]
            for k in range(missing):
                wanted.setdefault(slot_temps[k % len(slot_temps)], []).append(i)
        if not wanted:
            break
        for g, (temp, prompt_idx) in enumerate(sorted(wanted.items())):
            draw = replace(sampling, temperature=temp, seed=(sampling.seed + 7919 * round_ + 104729 * g) % 2**63)
            base = done

            def progress(d, _t, base=base):
                on_event(events.FeedbackProgress("sample", "progress", min(base + d, total), total,
                                                 model_name).to_dict())

            outs = generate_batch(model, tokenizer, [messages[i] for i in prompt_idx], draw,
                                  batch_size=batch_size, on_progress=progress)
            done += len(outs)
            for i, c in zip(prompt_idx, outs):
                stats["answers"] += 1
                text = c.text.strip()
                if not text:
                    stats["empty"] += 1
                elif text in seen[i]:
                    stats["duplicates"] += 1
                elif len(found[i]) < n:
                    seen[i].add(text)
                    stats["unfinished"] += not c.ended
                    found[i].append(Candidate(c.text, c.finish_reason, len(c.token_ids), temp, draw.seed))
    items = []
    for i, (row, cands) in enumerate(zip(rows, found)):
        if len(cands) < MIN_CANDIDATES:
            continue
        random.Random(f"{sampling.seed}:{i}").shuffle(cands)  # order hides temperature and draw order
        items.append(PromptItem(item_id(len(items)), list(messages[i]), tuple(cands),
                                key=str(getattr(row, "key", i)), source=getattr(row, "source", None),
                                line=getattr(row, "line", None), reference=getattr(row, "reference", None)))
    stats["kept"] = len(items)
    stats["too_few_answers"] = len(messages) - len(items)
    on_event(events.FeedbackProgress("sample", "done", done, total, model_name,
                                     seconds=round(time.time() - start, 2)).to_dict())
    return items, stats


def load_policy(model: str | None, adapter: str | Path | None, on_event=events.ignore):
    """(model, tokenizer, model_path) for sampling: `model` (default: the adapter run's base, else
    localtune's default model) with `adapter` attached and on."""
    from localtune.eval.variants import check_shared_base, model_for_runs
    from localtune.lora import load_adapter
    from localtune.models import load_model, resolve_model

    adapters = [adapter] if adapter else []
    model_path = resolve_model(model or model_for_runs(adapters), on_event=on_event)
    check_shared_base(model_path, adapters)
    m, tok = load_model(model_path)
    if adapter:
        load_adapter(m, adapter)
    return m, tok, model_path


def read_prompts(sources: Sequence, *, limit: int | None = None, on_event=events.ignore):
    """(rows, prompt_sets) from prompt files of any shape (data.prompts.read_prompt_set); skipped
    dataset rows are reported as notices. `limit`: the first N prompts only."""
    from localtune.data.prompts import read_prompt_set

    rows, sets = [], []
    for src in sources:
        got, problems = read_prompt_set(src, on_event=on_event)
        for p in problems:
            on_event(events.Notice(f"skipped {p}").to_dict())
        rows += got
        sets.append({"source": str(Path(src).resolve()) if Path(src).exists() else str(src), "rows": len(got)})
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise LocaltuneError("no prompts to answer")
    return rows, sets


def sample_session(out: str | Path, *, prompts: Sequence, model: str | None = None,
                   adapter: str | Path | None = None, n: int = 2, sampling_overrides: dict | None = None,
                   temperatures: Sequence[float] | None = None, retries: int = DEFAULT_RETRIES,
                   batch_size: int | None = None, limit: int | None = None,
                   on_event=events.ignore) -> FeedbackSession:
    """Everything `localtune feedback sample` does: read the prompts, load the model (and adapter),
    claim `out`, sample, write the session. Returns the finished session."""
    from localtune.generate import Sampling

    n = check_n(n, temperatures)
    FeedbackSession(out)._check_new()  # fail before loading anything
    rows, sets = read_prompts(prompts, limit=limit, on_event=on_event)
    on_event(events.Phase("loading_model", time=time.time()).to_dict())
    m, tok, model_path = load_policy(model, adapter, on_event)
    overrides = {**SAMPLING_DEFAULTS, **(sampling_overrides or {})}
    sampling = Sampling.from_generation_config(model_path, **overrides).validate()
    _slot_temperatures(sampling, n, temperatures)
    manifest = {"model": model, "model_path": str(model_path),
                "adapter": str(Path(adapter).resolve()) if adapter else None,
                "sampling": sampling.to_dict(), "temperatures": list(temperatures) if temperatures else None,
                "n": n, "prompt_sets": sets}
    session = FeedbackSession.begin(out, manifest)
    try:
        items, stats = sample_candidates(m, tok, rows, sampling, n, temperatures=temperatures, retries=retries,
                                         batch_size=batch_size, on_event=on_event, model_name=str(model_path))
        return session.finish(items, stats=stats)
    except BaseException:
        session.abandon()
        raise


def run_prompt_file(run_dir: str | Path) -> str:
    """The prompts to rate a run's answers on: its validation data, else its training data."""
    from localtune.runs import read_run

    info = read_run(run_dir)
    for key in ("valid", "data"):
        value = info.resolve(info.config.get(key))
        if value:
            return value
    raise LocaltuneError(f"{run_dir}: the run names no data file; give prompts (--prompts FILE)")


def default_session_dir(run_dir: str | Path | None = None, *, now: float | None = None) -> Path:
    """RUN/feedback/<time>/ for a run's answers, else ./feedback/<time>/ (a new name each time)."""
    from localtune.runs import RunDir

    def where(name: str) -> Path:
        return RunDir(run_dir).feedback_dir(name) if run_dir else Path("feedback") / name

    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path, k = where(stamp), 2
    while path.exists():
        path, k = where(f"{stamp}-{k}"), k + 1
    return path


def sample_for_run(run_dir: str | Path, *, prompts: Sequence | None = None, n: int = 2,
                   limit: int | None = RUN_PROMPTS, out: str | Path | None = None,
                   sampling_overrides: dict | None = None, on_event=events.ignore) -> FeedbackSession:
    """"Sample and rate answers of this run": the run's model with its adapter answers `prompts`
    (default: the first `limit` prompts of the run's validation data, else its training data)
    into RUN/feedback/<time>/ (or `out`)."""
    return sample_session(out or default_session_dir(run_dir), prompts=prompts or [run_prompt_file(run_dir)],
                          adapter=run_dir, n=n, limit=limit, sampling_overrides=sampling_overrides,
                          on_event=on_event)
