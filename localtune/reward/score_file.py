"""Score a file's rows with a reward model (`localtune reward score`).

- A preference file (the rows `train dpo|reward` read): both answers of each pair are scored; the
  result says how often chosen wins (accuracy) and by how much (margin).
- Chat rows (messages, sharegpt, alpaca, prompt/completion): each row's last assistant turn is the
  answer and what comes before it the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from localtune.data.example import Problem
from localtune.errors import DataError


@dataclass
class ScoredFile:
    kind: str  # "pairs" or "answers"
    rows: list[dict]  # one per row: source, line, and its reward(s)
    problems: list[Problem] = field(default_factory=list)  # rows skipped

    def summary(self) -> dict:
        """The numbers scripts read (`--json`): rows and mean reward; for pairs also accuracy (the
        share of pairs whose chosen answer scores higher) and mean margin (chosen - rejected)."""
        out = {"kind": self.kind, "rows": len(self.rows), "skipped": len(self.problems)}
        if self.kind == "pairs":
            rewards = [r[k] for r in self.rows for k in ("chosen_reward", "rejected_reward")]
            out["pairs"] = len(self.rows)
            out["accuracy"] = float(np.mean([r["correct"] for r in self.rows]))
            out["mean_margin"] = float(np.mean([r["margin"] for r in self.rows]))
            out["mean_chosen"] = float(np.mean([r["chosen_reward"] for r in self.rows]))
            out["mean_rejected"] = float(np.mean([r["rejected_reward"] for r in self.rows]))
        else:
            rewards = [r["reward"] for r in self.rows]
        out["mean_reward"] = float(np.mean(rewards))
        return out


def score_file(reward_model, path: str | Path) -> ScoredFile:
    """Every usable row of `path` scored by `reward_model` (a reward.model.RewardModel), batched."""
    from localtune.data.preferences import looks_like_preferences

    if looks_like_preferences(path):
        return _score_pairs(reward_model, path)
    return _score_answers(reward_model, path)


def _score_pairs(rm, path) -> ScoredFile:
    from localtune.data.preferences import read_preferences

    ds = read_preferences(path)
    n = len(ds.examples)
    rewards = rm.score([ex.prompt for ex in ds.examples] * 2,
                       [ex.chosen for ex in ds.examples] + [ex.rejected for ex in ds.examples])
    rows = []
    for ex, c, r in zip(ds.examples, rewards[:n], rewards[n:]):
        rows.append({"source": ex.source, "line": ex.line, "chosen_reward": c, "rejected_reward": r,
                     "margin": c - r, "correct": c > r})
    return ScoredFile("pairs", rows, list(ds.problems))


def _score_answers(rm, path) -> ScoredFile:
    from localtune.data.prompts import read_data_prompts

    try:
        prompts, problems = read_data_prompts(str(path))
    except ValueError as e:
        raise DataError(f"{path}: {e}") from None
    usable = [p for p in prompts if p.reference is not None]
    problems = list(problems) + [Problem(p.source, p.line, "no assistant answer to score (the row ends with "
                                                           "a user turn)") for p in prompts if p.reference is None]
    if not usable:
        raise DataError(f"{path}: no row has an answer to score (chat rows ending with an assistant turn, "
                        "prompt/completion rows, or preference pairs)")
    rewards = rm.score([p.messages for p in usable], [p.reference for p in usable])
    rows = [{"source": p.source, "line": p.line, "reward": r} for p, r in zip(usable, rewards)]
    return ScoredFile("answers", rows, sorted(problems, key=lambda p: p.line))
