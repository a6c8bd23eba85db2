"""From labels to training files: preference pairs `train dpo` reads, and SFT rows of corrected
answers.

Pairs are conversational ({"chosen": [...messages, answer], "rejected": [...]}, system prompts
kept as the prompt had them) with extra keys `train dpo` ignores: source ("human" | "judge" |
"critique"), confidence (1 for a person; the judge's order-averaged probability; null for a
critique-revision), prompt_id, session.

Which pairs a label gives:
- a person's best/worst pick: the best over the worst (best over each of the others when no worst
  was given); with `all_pairs`, every pair the ranking orders (best > middle > worst);
- a person's edit: the corrected answer over the answer it was made from (with `all_pairs`, over
  every candidate), and an SFT row of the corrected answer;
- a tie or a skip: nothing (and the judge's verdicts on that prompt are not used either);
- the judge, on a prompt without a person's label: the answer with the highest win rate over the
  one with the lowest, when their own verdict agrees and is consistent; with `all_pairs`, every
  consistent verdict; each only with confidence >= min_confidence;
- a usable critique-revision: the revision over the original, and an SFT row of the revision.
A person's label for a prompt takes precedence over the judge's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localtune.errors import LocaltuneError
from localtune.feedback.judge import verdict_from, win_rates_from
from localtune.feedback.labels import LabelState, preferred_pairs, replay
from localtune.feedback.session import FeedbackSession, PromptItem
from localtune.fsutil import atomic_write_text

SOURCES = ("human", "judge", "critique")


@dataclass
class ExportReport:
    pairs: int = 0
    sft_rows: int = 0
    by_source: dict = field(default_factory=lambda: {s: 0 for s in SOURCES})
    left_out: dict = field(default_factory=dict)  # why labels gave no pair: tie, skip, low_confidence ...
    out: str | None = None
    sft_out: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def _conv(item: PromptItem, answer: str) -> list[dict]:
    return list(item.messages) + [{"role": "assistant", "content": answer}]


def session_rows(session: FeedbackSession, state: LabelState | None = None, *, sources=SOURCES,
                 min_confidence: float = 0.0, all_pairs: bool = False) -> tuple[list[dict], list[dict], ExportReport]:
    """(pair rows, SFT rows, report) of a session's labels (module doc)."""
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise LocaltuneError(f"unknown label source(s) {sorted(unknown)}; choose from {', '.join(SOURCES)}")
    if not 0 <= min_confidence <= 1:
        raise LocaltuneError(f"--min-confidence {min_confidence}: must be in [0, 1]")
    state = state or replay(session.records())
    pairs, sft, report = [], [], ExportReport()
    left = report.left_out

    def pair(item, chosen, rejected, source, confidence):
        pairs.append({"chosen": _conv(item, chosen), "rejected": _conv(item, rejected), "source": source,
                      "confidence": confidence, "prompt_id": item.id, "session": str(session.path)})
        report.by_source[source] += 1

    for item in session.items:
        texts = [c.text for c in item.candidates]
        label = state.human.get(item.id) if "human" in sources else None
        if label is not None:
            kind = label["type"]
            if kind == "rank":
                for a, b in preferred_pairs(label["order"], all_pairs=all_pairs):
                    pair(item, texts[a], texts[b], "human", 1.0)
            elif kind == "edit":
                others = range(len(texts)) if all_pairs else [label["candidate"]]
                for b in others:
                    pair(item, label["text"], texts[b], "human", 1.0)
                sft.append({"messages": _conv(item, label["text"]), "source": "human", "prompt_id": item.id})
            else:
                left[kind] = left.get(kind, 0) + 1
        elif "judge" in sources and item.id in state.judge:
            _judge_pairs(item, state.judge[item.id], texts, min_confidence, all_pairs, pair, left)
        if "critique" in sources:
            for r in state.revisions.get(item.id, []):
                if not r.get("usable"):
                    left["unusable_revision"] = left.get("unusable_revision", 0) + 1
                    continue
                pair(item, r["revision"], texts[r["candidate"]], "critique", None)
                sft.append({"messages": _conv(item, r["revision"]), "source": "critique", "prompt_id": item.id,
                            "principle": r.get("principle")})
    report.pairs, report.sft_rows = len(pairs), len(sft)
    return pairs, sft, report


def _judge_pairs(item, records: dict, texts, min_confidence, all_pairs, pair, left) -> None:
    verdicts = {k: verdict_from(r["p_orders"][0], 1 - r["p_orders"][1]) for k, r in records.items()}
    if all_pairs:
        chosen = list(verdicts.items())
    else:
        n = len(texts)
        if len(verdicts) < n * (n - 1) // 2:
            left["judge_incomplete"] = left.get("judge_incomplete", 0) + 1
            return
        rates = win_rates_from(n, verdicts)
        hi = max(range(n), key=lambda i: rates[i])
        lo = min(range(n), key=lambda i: rates[i])
        if hi == lo:
            left["judge_tie"] = left.get("judge_tie", 0) + 1
            return
        key = (min(hi, lo), max(hi, lo))
        v = verdicts[key]
        if v.winner != "tie" and (v.winner == "a") != (hi == key[0]):
            left["judge_intransitive"] = left.get("judge_intransitive", 0) + 1  # the direct verdict disagrees
            return
        chosen = [(key, v)]
    for (a, b), v in chosen:
        if v.winner == "tie":
            left["judge_tie"] = left.get("judge_tie", 0) + 1
        elif v.confidence < min_confidence:
            left["low_confidence"] = left.get("low_confidence", 0) + 1
        else:
            win, lose = (a, b) if v.winner == "a" else (b, a)
            pair(item, texts[win], texts[lose], "judge", round(v.confidence, 6))


def default_sft_path(out: str | Path) -> Path:
    """pairs.jsonl -> pairs.sft.jsonl (beside it)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.sft.jsonl" if out.suffix else f"{out.name}.sft.jsonl")


def export_session(session: FeedbackSession, out: str | Path, *, sft_out: str | Path | None = None,
                   sources=SOURCES, min_confidence: float = 0.0, all_pairs: bool = False,
                   overwrite: bool = False) -> ExportReport:
    """Write the pairs to `out` and the SFT rows (if any) to `sft_out` (default beside `out`),
    each atomically. An existing file is replaced only with overwrite."""
    pairs, sft, report = session_rows(session, sources=sources, min_confidence=min_confidence,
                                      all_pairs=all_pairs)
    sft_out = Path(sft_out) if sft_out else default_sft_path(out)
    targets = [Path(out)] + ([sft_out] if sft else [])
    for t in targets:
        if t.exists() and not overwrite:
            raise LocaltuneError(f"{t}: exists; choose another path or pass --overwrite")
    if not pairs:
        raise LocaltuneError(f"{session.path}: no preference pairs yet ({_why(report)}); rate some answers "
                             "(`localtune feedback rate`) or judge them (`localtune feedback judge`)")
    atomic_write_text(out, _jsonl(pairs))
    report.out = str(out)
    if sft:
        atomic_write_text(sft_out, _jsonl(sft))
        report.sft_out = str(sft_out)
    return report


def _why(report: ExportReport) -> str:
    return ", ".join(f"{k}: {v}" for k, v in report.left_out.items()) or "no labels"


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
