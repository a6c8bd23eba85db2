"""Critique and revise (Constitutional AI's supervised stage): a model reads its own answer, writes a
critique of it by one principle of the constitution (drawn at random per answer), then rewrites the
answer. The revision is preferred over the original (a preference pair) and is an SFT row.

The exchange is a conversation, as in the Constitutional AI paper: the prompt, the answer as the
assistant's turn, the principle's critique request as a user turn, the critique, the revision
request, the revision. Both steps are batched generate_batch calls over all answers.
A revision is usable when it ended (not cut by max tokens), is not empty and differs from the
original; the others are kept in the log (usable: false) but give no pair.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from typing import Sequence

from localtune import events
from localtune.feedback.constitution import Constitution, Principle
from localtune.feedback.labels import replay
from localtune.feedback.session import FeedbackSession

REVISION_TAIL = " Reply with the revised answer only."
_LEADING_LABEL = re.compile(r"^\s*(revised answer|revision|rewritten answer)\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Revision:
    principle: str
    critique: str
    revision: str
    ended: bool
    usable: bool


def critique_revise(model, tokenizer, items: Sequence[tuple], constitution: Constitution, sampling, *,
                    seed: int = 0, batch_size: int | None = None, on_event=events.ignore,
                    model_name: str | None = None) -> list[Revision]:
    """One Revision per (prompt_messages, answer) item, principles drawn with `seed`."""
    from localtune.generate import generate_batch

    rng = random.Random(seed)
    principles: list[Principle] = [rng.choice(constitution.principles) for _ in items]
    ask = [list(prompt) + [{"role": "assistant", "content": answer},
                           {"role": "user", "content": p.critique_request()}]
           for (prompt, answer), p in zip(items, principles)]
    critiques = _generate(generate_batch, model, tokenizer, ask, sampling, batch_size, "critique", on_event,
                          model_name)
    revise = [conv + [{"role": "assistant", "content": c.text.strip()},
                      {"role": "user", "content": p.revision_request() + REVISION_TAIL}]
              for conv, c, p in zip(ask, critiques, principles)]
    revisions = _generate(generate_batch, model, tokenizer, revise, sampling, batch_size, "revise", on_event,
                          model_name)
    out = []
    for (_, answer), p, c, r in zip(items, principles, critiques, revisions):
        text = _LEADING_LABEL.sub("", r.text).strip()
        usable = r.ended and bool(text) and text != answer.strip()
        out.append(Revision(p.name, c.text.strip(), text, r.ended, usable))
    return out


def _generate(generate_batch, model, tokenizer, prompts, sampling, batch_size, stage, on_event, model_name):
    start = time.time()
    total = len(prompts)
    on_event(events.FeedbackProgress(stage, "start", 0, total, model_name).to_dict())
    outs = generate_batch(model, tokenizer, prompts, sampling, batch_size=batch_size,
                          on_progress=lambda d, t: on_event(
                              events.FeedbackProgress(stage, "progress", d, t, model_name).to_dict()))
    on_event(events.FeedbackProgress(stage, "done", total, total, model_name,
                                     seconds=round(time.time() - start, 2)).to_dict())
    return outs


def critique_session(session: FeedbackSession, model, tokenizer, constitution: Constitution, sampling, *,
                     model_name: str | None = None, batch_size: int | None = None,
                     on_event=events.ignore) -> dict:
    """Critique and revise every candidate of the session that has no revision yet; each result
    is appended to the labels log (source "critique"). Returns counts."""
    took = not session.locked
    if took:
        session.acquire()
    try:
        state = replay(session.records())
        done = {(p, r["candidate"]) for p, rs in state.revisions.items() for r in rs}
        todo = [(it, i) for it in session.items for i in range(len(it.candidates)) if (it.id, i) not in done]
        revisions = critique_revise(model, tokenizer, [(it.messages, it.candidates[i].text) for it, i in todo],
                                    constitution, sampling, seed=sampling.seed, batch_size=batch_size,
                                    on_event=on_event, model_name=model_name) if todo else []
        for (it, i), r in zip(todo, revisions):
            session.append({"source": "critique", "type": "revision", "prompt": it.id, "candidate": i,
                            "principle": r.principle, "critique": r.critique, "revision": r.revision,
                            "ended": r.ended, "usable": r.usable, "model": model_name})
        return {"answers": len(todo), "usable": sum(r.usable for r in revisions),
                "unfinished": sum(not r.ended for r in revisions), "already_revised": len(done)}
    finally:
        if took:  # a caller that holds the lock keeps it
            session.release()
