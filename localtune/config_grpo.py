"""GRPO configuration (GRPO, Dr. GRPO, RLOO): the rollout options plus the policy-gradient knobs."""

from __future__ import annotations

from dataclasses import dataclass

from localtune.config import _f, check_mode_fields
from localtune.config_rollout import RolloutConfig

ALGOS = ("grpo", "dr-grpo", "rloo")


@dataclass(frozen=True)
class GRPOConfig(RolloutConfig):
    algo: str = _f("grpo", "advantage and loss: grpo ((r - group mean) / group std, each answer's token mean), "
                           "dr-grpo (r - group mean, no std, tokens summed over a fixed length), rloo "
                           "(r - mean of the other answers)", choices=ALGOS)
    group_size: int = _f(8, "answers per prompt (the group their rewards are compared in)")
    kl_beta: float = _f(0.04, "weight of the KL penalty to the starting policy (0: none, and no reference pass)")
    clip_epsilon: float = _f(0.2, "PPO clip range of the probability ratio (active with --updates-per-batch > 1)")
    updates_per_batch: int = _f(1, "optimizer steps on each batch of answers (mu); > 1 makes the ratio clip matter")

    def mode_problems(self) -> list[str]:
        problems = super().mode_problems() + check_mode_fields(self, GRPO_FIELDS)
        if problems:
            return problems
        if self.group_size < 2:
            problems.append("group_size must be >= 2 (advantages compare answers to the same prompt)")
        if self.kl_beta < 0:
            problems.append("kl_beta must be >= 0")
        if not 0 < self.clip_epsilon < 1:
            problems.append("clip_epsilon must be in (0, 1)")
        if self.updates_per_batch < 1:
            problems.append("updates_per_batch must be >= 1")
        return problems


GRPO_FIELDS = {"algo", "group_size", "kl_beta", "clip_epsilon", "updates_per_batch"}
