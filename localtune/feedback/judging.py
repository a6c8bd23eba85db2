"""The judge at work: on a feedback session (every pair of candidates of every prompt, verdicts
appended to the labels log) and on a preference file (labels hidden, agreement reported).

Numbers a report gives (JudgeReport):
  pairs               pairs judged
  consistent          share of pairs whose verdict survives the order swap (the rest are ties)
  agreement           share of pairs where the verdict names the labelled-better answer (a tie
                      counts as a miss): what training on the judge's labels would get right
  agreement_decided   the same over consistent verdicts only
  agreement_averaged  share where the order-averaged probability favours the labelled answer
                      (ignoring consistency)
  first_position      share of single-order readings won by the answer shown first (0.5: no bias)
  mean_confidence     mean order-averaged probability of the answer judged better
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from localtune import events
from localtune.feedback.judge import Judge, Verdict, verdict_from
from localtune.feedback.labels import human_preferences, replay
from localtune.feedback.session import FeedbackSession
from localtune.fsutil import atomic_write_text

CHUNK_PAIRS = 32  # pairs per batched call; each chunk's verdicts are appended before the next


@dataclass
class Agreement:
    """How verdicts compare with given labels. `expected[k]` is +1 when a is the labelled-better
    answer of pair k, -1 when b is."""

    pairs: int = 0
    agreement: float | None = None
    agreement_decided: float | None = None
    agreement_averaged: float | None = None

    @classmethod
    def of(cls, verdicts: Sequence[Verdict], expected: Sequence[int]) -> "Agreement":
        if not verdicts:
            return cls()
        named = ["a" if e > 0 else "b" for e in expected]
        hits = [v.winner == w for v, w in zip(verdicts, named)]
        decided = [h for v, h in zip(verdicts, hits) if v.consistent]
        averaged = [(v.p_a_better - 0.5) * e > 0 for v, e in zip(verdicts, expected)]
        return cls(len(verdicts), _share(hits), _share(decided), _share(averaged))


@dataclass
class JudgeReport:
    pairs: int = 0
    consistent: float | None = None
    agreement: float | None = None  # with the file's labels (--pairs) or the person (a session)
    agreement_decided: float | None = None
    agreement_averaged: float | None = None
    labelled_pairs: int = 0  # pairs that had a label to agree with
    first_position: float | None = None
    mean_confidence: float | None = None
    reused: int = 0  # verdicts of the same judge already in the session, not judged again
    seconds: float = 0.0
    judge: dict = field(default_factory=dict)
    out: str | None = None

    def to_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _share(flags) -> float | None:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else None


def _summary(verdicts: list[Verdict], labelled: Agreement, **extra) -> JudgeReport:
    # p_orders = (P(a better) with a shown first, with a shown second): the first position won a
    # reading when p_orders[0] > 0.5, and when p_orders[1] < 0.5. Identical answers (no forward) are left out.
    read = [v for v in verdicts if v.p_orders != (0.5, 0.5)]
    firsts = [v.p_orders[0] > 0.5 for v in read] + [v.p_orders[1] < 0.5 for v in read]
    return JudgeReport(pairs=len(verdicts), consistent=_share(v.consistent for v in verdicts),
                       agreement=labelled.agreement, agreement_decided=labelled.agreement_decided,
                       agreement_averaged=labelled.agreement_averaged, labelled_pairs=labelled.pairs,
                       first_position=_share(firsts),
                       mean_confidence=_share(v.confidence for v in verdicts) if verdicts else None,
                       **extra)


def _progress(on_event, judge: Judge, total: int, offset: int = 0):
    def report(done, _total):
        on_event(events.FeedbackProgress("judge", "progress", offset + done, total, judge.name).to_dict())
    return report


def judge_session(session: FeedbackSession, judge: Judge, *, rejudge: bool = False,
                  on_event=events.ignore) -> JudgeReport:
    """Judge every pair of candidates of every prompt (both orders), appending each chunk's
    verdicts to the labels log as it finishes (a killed judge keeps what it finished; rerun
    skips pairs this judge has verdicts for, unless rejudge). Agreement is with the person's
    rankings where there are some."""
    start = time.time()
    took = not session.locked
    if took:
        session.acquire()
    try:
        state = replay(session.records())
        jid = judge.id
        done_before = set() if rejudge else {
            (p, key) for p, verdicts in state.judge.items() for key, r in verdicts.items() if r.get("judge") == jid}
        todo = [(it, i, j) for it in session.items for i in range(len(it.candidates))
                for j in range(i + 1, len(it.candidates)) if (it.id, (i, j)) not in done_before]
        if jid not in state.judges or rejudge:
            session.append({"source": "judge", "type": "judge_info", "judge": jid, **judge.describe(),
                            "principles": judge.constitution.names()})
        total = 2 * len(todo)
        on_event(events.FeedbackProgress("judge", "start", 0, total, judge.name).to_dict())
        for c in range(0, len(todo), CHUNK_PAIRS):
            chunk = todo[c:c + CHUNK_PAIRS]
            verdicts = judge.compare_many([(it.messages, it.candidates[i].text, it.candidates[j].text)
                                           for it, i, j in chunk], _progress(on_event, judge, total, 2 * c))
            for (it, i, j), v in zip(chunk, verdicts):
                session.append({"source": "judge", "type": "judge", "prompt": it.id, "a": i, "b": j,
                                **v.to_json(), "judge": jid})
        on_event(events.FeedbackProgress("judge", "done", total, total, judge.name,
                                         seconds=round(time.time() - start, 2)).to_dict())
        return session_report(session, judge_id=jid, reused=len(done_before), seconds=time.time() - start)
    finally:
        if took:  # a caller that holds the lock keeps it
            session.release()


def session_report(session: FeedbackSession, *, judge_id: str | None = None, reused: int = 0,
                   seconds: float = 0.0) -> JudgeReport:
    """The judge's numbers on a session (its latest verdicts, or judge_id's only), and its
    agreement with the person's rankings on the pairs they order."""
    state = replay(session.records())
    verdicts, expected, labelled = [], [], []
    for it in session.items:
        for (a, b), r in sorted(state.judge.get(it.id, {}).items()):
            if judge_id is not None and r.get("judge") != judge_id:
                continue
            v = verdict_from(r["p_orders"][0], 1 - r["p_orders"][1])
            verdicts.append(v)
            person = human_preferences(state.human.get(it.id, {}), len(it.candidates)) or {}
            if (a, b) in person:
                expected.append(person[(a, b)])
                labelled.append(v)
    info = state.judges.get(judge_id, {}) if judge_id else {}
    return _summary(verdicts, Agreement.of(labelled, expected), reused=reused, seconds=round(seconds, 2),
                    judge={k: info.get(k) for k in ("judge", "model", "adapter", "constitution") if k in info})


def judge_pairs_file(judge: Judge, path: str | Path, out: str | Path | None = None, *,
                     on_event=events.ignore) -> JudgeReport:
    """Judge a preference file blind (both orders; the judge never learns which side is labelled
    chosen) and report agreement with its labels. `out`: every usable pair, conversational
    (system prompts kept), with the verdict under "judge" (winner "chosen" | "rejected" | "tie",
    p_chosen_better, p_orders, consistent); `train dpo` reads it (extra keys are ignored)."""
    from localtune.data.preferences import read_preferences

    start = time.time()
    ds = read_preferences(path)
    for p in ds.problems:
        on_event(events.Notice(f"skipped {p}").to_dict())
    items = [(ex.prompt, ex.chosen, ex.rejected) for ex in ds.examples]
    total = 2 * len(items)
    on_event(events.FeedbackProgress("judge", "start", 0, total, judge.name).to_dict())
    verdicts = judge.compare_many(items, _progress(on_event, judge, total))
    on_event(events.FeedbackProgress("judge", "done", total, total, judge.name,
                                     seconds=round(time.time() - start, 2)).to_dict())
    if out is not None:
        rows = []
        for ex, v in zip(ds.examples, verdicts):
            verdict = {"winner": {"a": "chosen", "b": "rejected"}.get(v.winner, "tie"),
                       "p_chosen_better": round(v.p_a_better, 6), "p_orders": [round(p, 6) for p in v.p_orders],
                       "consistent": v.consistent, "source": f"{ex.source}:{ex.line}"}
            rows.append({"chosen": ex.conversation("chosen"), "rejected": ex.conversation("rejected"),
                         "judge": verdict})
        atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return _summary(verdicts, Agreement.of(verdicts, [1] * len(verdicts)), seconds=round(time.time() - start, 2),
                    judge={"judge": judge.id, **judge.describe()}, out=str(out) if out else None)
