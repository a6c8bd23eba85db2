"""DPO configuration: every SFT option plus the preference-loss knobs, checked on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from localtune.config import TrainConfig, _f, check_mode_fields, pair_mode_problems

LOSSES = ("sigmoid", "ipo", "hinge", "orpo", "simpo")
REFERENCE_FREE = ("orpo", "simpo")  # these never look at a reference policy
REF_MODES = ("cached", "live")


@dataclass(frozen=True)
class DPOConfig(TrainConfig):
    beta: float = _f(0.1, "preference strength: DPO/IPO/hinge temperature beta; SimPO's reward "
                          "scale (its paper uses 2.0-2.5)")
    loss: str = _f("sigmoid", "preference loss", choices=LOSSES)
    label_smoothing: float = _f(0.0, "sigmoid loss only: assumed fraction of flipped labels "
                                     "(conservative DPO), in [0, 0.5)")
    ref: str = _f("cached", "reference log-probs: computed once before training and stored in the "
                            "run (cached), or by a second no-grad forward each step (live)",
                  choices=REF_MODES)
    orpo_lambda: float = _f(0.1, "ORPO: weight of the odds-ratio term added to the chosen NLL")
    simpo_gamma: float = _f(0.5, "SimPO: target reward margin gamma")
    rpo_alpha: float = _f(0.0, "weight of an NLL term on the chosen answers added to the preference loss "
                               "(RPO, Pang et al. 2024; TRL's rpo_alpha: the chosen tokens' mean NLL): keeps "
                               "the chosen answers likely, so the model still ends them; 0 = off, the paper uses 1")

    def mode_problems(self) -> list[str]:
        problems = check_mode_fields(self, DPO_FIELDS)
        if not problems:
            for name in ("beta", "label_smoothing", "orpo_lambda", "simpo_gamma", "rpo_alpha"):
                if not math.isfinite(getattr(self, name)):
                    problems.append(f"{name} must be a finite number (got {getattr(self, name)!r})")
        if not problems:
            if self.beta <= 0:
                problems.append("beta must be > 0")
            if not 0 <= self.label_smoothing < 0.5:
                problems.append("label_smoothing must be in [0, 0.5)")
            if self.label_smoothing and self.loss != "sigmoid":
                problems.append(f"label_smoothing applies to the sigmoid loss only (loss is {self.loss})")
            if self.orpo_lambda < 0:
                problems.append("orpo_lambda must be >= 0")
            if self.rpo_alpha < 0:
                problems.append("rpo_alpha must be >= 0 (0 = off)")
        return super().mode_problems() + problems + pair_mode_problems(self, "DPO")

    @property
    def uses_reference(self) -> bool:
        return self.loss not in REFERENCE_FREE


DPO_FIELDS = {"beta", "loss", "label_smoothing", "ref", "orpo_lambda", "simpo_gamma", "rpo_alpha"}


from localtune.config_rollout import RolloutConfig  # noqa: E402  (after DPOConfig: no cycle, read in order)


@dataclass(frozen=True)
class OnlineDPOConfig(DPOConfig, RolloutConfig):
    """`train dpo --online`: the DPO options plus the rollout options (config_rollout.py)."""

    online: bool = _f(False, "online DPO: the model answers --prompts twice, --reward picks the better answer, "
                             "one DPO step per batch (the reference is scored on each new pair; --ref does not "
                             "apply)")

    def mode_problems(self) -> list[str]:
        problems = super().mode_problems()
        if not self.online:
            problems.append("the rollout options (--prompts, --reward, ...) need --online")
        return problems
