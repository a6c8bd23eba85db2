"""Reward-model configuration: every SFT option that applies to pairs, plus the Bradley-Terry knobs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from localtune.config import TrainConfig, _f, check_mode_fields, pair_mode_problems


@dataclass(frozen=True)
class RewardConfig(TrainConfig):
    margin: float = _f(0.0, "a constant margin m in -log σ(r_chosen - r_rejected - m), added to each "
                            "pair's own 'margin' column when the data has one (TRL's RewardTrainer)")
    center_rewards: float = _f(0.0, "weight of mean((r_chosen + r_rejected)^2) added to the loss, which keeps "
                                    "rewards centred on 0 (TRL's center_rewards_coefficient; 0.01 is usual)")

    def mode_problems(self) -> list[str]:
        problems = check_mode_fields(self, REWARD_FIELDS)
        if not problems:
            if not math.isfinite(self.margin):
                problems.append("margin must be a finite number")
            if not (self.center_rewards >= 0 and math.isfinite(self.center_rewards)):
                problems.append("center_rewards must be >= 0")
        return super().mode_problems() + problems + pair_mode_problems(self, "a reward model")


REWARD_FIELDS = {"margin", "center_rewards"}
