"""Reward sources for online RL (GRPO, RLOO, online DPO): what scores a model's answers.

    sources = open_sources(["ifeval", "python:rewards.py:brevity:0.5"])
    scores = score_all(sources, rows, prompts, completions)   # scores.total[i], scores.by_source[name][i]

The contract is `RewardSource` (source.py); the spec syntax is spec.py's; rule sources are
rules.py's, a user's Python function python_fn.py's.
"""

from localtune.rewards.source import RewardError, RewardSource, Scores, as_reward, row_where, score_all
from localtune.rewards.spec import KINDS, RewardSpec, open_sources, parse_spec, parse_specs, with_absolute_path

__all__ = ["RewardError", "RewardSource", "Scores", "as_reward", "row_where", "score_all", "KINDS", "RewardSpec",
           "open_sources", "parse_spec", "parse_specs", "with_absolute_path"]
