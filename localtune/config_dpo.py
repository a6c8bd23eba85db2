"""DPO configuration: every SFT option plus the preference-loss knobs, checked on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from localtune.config import TrainConfig, _f, common_problems, mode_field_problems, pair_mode_problems
from localtune.errors import LocaltuneError

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

    def __post_init__(self):
        problems = mode_field_problems(self, DPO_FIELDS)
        if not problems:
            for name in ("beta", "label_smoothing", "orpo_lambda", "simpo_gamma"):
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
        problems += pair_mode_problems(self, "DPO")
        problems += common_problems(self)  # TrainConfig's own checks (its __post_init__ is this one's)
        if problems:
            raise LocaltuneError("bad configuration: " + "; ".join(problems))

    @property
    def uses_reference(self) -> bool:
        return self.loss not in REFERENCE_FREE


DPO_FIELDS = {"beta", "loss", "label_smoothing", "ref", "orpo_lambda", "simpo_gamma", "rpo_alpha"}
