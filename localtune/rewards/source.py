"""The reward-source contract: what GRPO and online DPO ask of anything that scores answers.

    class RewardSource(Protocol):
        name: str       # the metric key's suffix: reward_<name>
        spec: str       # what the user typed (ifeval, python:r.py:fn, ...), for messages
        weight: float   # its share of the total reward
        def score(self, rows, prompts, completions) -> list[float | None]

`score` gets every answer of a step together (a model-based source scores faster in batches):
`rows[i]` is the PromptRow answer i replies to (its `fields` hold the row's own JSON object),
`prompts[i]` that row's last user message, `completions[i]` the answer's text. It returns one number
per answer, or None where it has no verdict (an IFEval reward for a row without instructions, a
user function returning None or NaN): such scores are reported, never trained on.

A source that cannot score at all raises RewardError naming itself and the row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

from localtune.errors import LocaltuneError


class RewardError(LocaltuneError):
    """A reward source failed (a user function raised, returned a non-number, ...)."""


@runtime_checkable
class RewardSource(Protocol):
    name: str
    spec: str
    weight: float

    def score(self, rows: Sequence, prompts: Sequence[str], completions: Sequence[str]) -> list[float | None]: ...


def row_where(row) -> str:
    """'file:line (key K)': how messages name a prompt row."""
    return f"{row.source}:{row.line} (key {row.key!r})"


def as_reward(value, source: RewardSource, row) -> float | None:
    """A source's value as a float, or None for "no verdict" (None, NaN). Anything else that is not
    a finite number is the source's bug: RewardError naming the source and the row."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:  # numpy and mlx scalars
            value = float(value)
        except (TypeError, ValueError):
            raise RewardError(f"reward {source.spec} returned {type(value).__name__} {value!r} for the prompt "
                              f"at {row_where(row)}; a reward must be a number (or None)") from None
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise RewardError(f"reward {source.spec} returned {value} for the prompt at {row_where(row)}; "
                          "a reward must be finite (return None to give no verdict)")
    return value


@dataclass
class Scores:
    """Every source's scores of a step's answers: `by_source[name][i]` (None = no verdict) and the
    weighted total per answer (None when no source has a verdict)."""

    by_source: dict[str, list[float | None]]
    total: list[float | None]

    def missing(self, name: str) -> int:
        return sum(v is None for v in self.by_source[name])


def score_all(sources: Sequence[RewardSource], rows, prompts, completions) -> Scores:
    """Run every source over the answers and weigh them. An answer's total sums the weighted scores
    of the sources that gave one (as TRL does with None rewards); with none it is None."""
    by_source = {}
    for source in sources:
        values = list(source.score(rows, prompts, completions))
        if len(values) != len(completions):
            raise RewardError(f"reward {source.spec} returned {len(values)} scores for {len(completions)} answers")
        by_source[source.name] = [as_reward(v, source, r) for v, r in zip(values, rows)]
    total = []
    for i in range(len(completions)):
        parts = [s.weight * by_source[s.name][i] for s in sources if by_source[s.name][i] is not None]
        total.append(sum(parts) if parts else None)
    return Scores(by_source, total)
