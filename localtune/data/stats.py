"""Numbers about a dataset for `localtune data check` and the TUI: sizes, token lengths,
duplicates."""

from __future__ import annotations

import json
import math
from collections import Counter

from localtune.data.example import DatasetFile, Example
from localtune.data.template import tokenize_example

MAX_LISTED = 10  # line numbers listed for duplicates / overlong rows


def percentile(sorted_values: list[int], p: float) -> int:
    """Nearest-rank percentile: a value that actually occurs in the data."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _summary(values: list[int]) -> dict:
    s = sorted(values)
    return {
        "p50": percentile(s, 50), "p90": percentile(s, 90), "p99": percentile(s, 99),
        "max": s[-1] if s else 0, "mean": round(sum(s) / len(s), 1) if s else 0.0,
        "total": sum(s),
    }


def _key(ex: Example) -> str:
    return json.dumps(ex.messages, sort_keys=True) if ex.messages is not None else ex.text


def duplicates(examples: list[Example]) -> dict:
    """Rows identical (same messages / text) to an earlier row: count, and the first few as
    their line with the line of the row they repeat."""
    first: dict[str, int] = {}
    dups = []
    for ex in examples:
        k = _key(ex)
        if k in first:
            dups.append((ex.line, first[k]))
        else:
            first[k] = ex.line
    return {
        "count": len(dups),
        "lines": [d[0] for d in dups[:MAX_LISTED]],
        "same_as": [d[1] for d in dups[:MAX_LISTED]],
    }


def dataset_stats(dsfile: DatasetFile, tokenizer=None, *, max_seq_len: int | None = None,
                  train_on_prompt: bool = False) -> dict:
    """A plain dict (JSON-serialisable). Token numbers only when a tokenizer is given; a token
    length is that of the whole rendered row (chat template included)."""
    exs = dsfile.examples
    turns = [sum(m["role"] == "assistant" for m in ex.messages) if ex.messages else 0 for ex in exs]
    stats = {
        "path": dsfile.path,
        "format": dsfile.format,
        "rows": dsfile.n_rows,
        "usable_rows": len(exs),
        "problems": len(dsfile.problems),
        "formats": dict(Counter(ex.format for ex in exs)),
        "turns": {"assistant_turns": sum(turns), "max_per_row": max(turns, default=0),
                  "multi_turn_rows": sum(t > 1 for t in turns)},
        "duplicates": duplicates(exs),
    }
    if tokenizer is None:
        return stats
    lengths, trained, over = [], [], []
    for ex in exs:
        tok = tokenize_example(ex, tokenizer, train_on_prompt=train_on_prompt)
        lengths.append(len(tok.ids))
        trained.append(sum(tok.mask))
        if max_seq_len is not None and len(tok.ids) > max_seq_len:
            over.append(ex.line)
    stats["tokens"] = _summary(lengths)
    stats["trained_tokens"] = _summary(trained)
    if max_seq_len is not None:
        stats["max_seq_len"] = max_seq_len
        stats["over_max_seq_len"] = {"count": len(over), "lines": over[:MAX_LISTED]}
    return stats
