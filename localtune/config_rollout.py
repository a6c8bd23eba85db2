"""Options of every mode that trains on the model's own answers (GRPO, RLOO, online DPO): where the
prompts come from, how answers are sampled, how they are rewarded, what happens to a truncated one.

Sampling defaults are TRL's for online RL (temperature 1, no top-p/top-k), not the model's
generation_config.json: the group needs diverse answers to compare, and a chat model's config is
often tuned for one good answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from localtune.config import TrainConfig, _f, check_mode_fields

TRUNCATED = ("mask", "penalize", "keep")


@dataclass(frozen=True)
class RolloutConfig(TrainConfig):
    reward: tuple[str, ...] = _f((), "reward source SPEC[:WEIGHT]: ifeval, checks:FILE.yaml, length:MIN-MAX, "
                                     "python:PATH.py:FUNCTION, reward-model:RUN, judge:MODEL|policy "
                                     "(repeat the flag for several)", append=True)
    max_completion: int = _f(256, "most tokens per sampled answer")
    temperature: float = _f(1.0, "sampling temperature of the answers (> 0)")
    top_p: float = _f(1.0, "nucleus sampling of the answers, in (0, 1]; 1 = off")
    top_k: int = _f(0, "keep the k likeliest tokens when sampling; 0 = off")
    min_p: float = _f(0.0, "drop tokens below min-p x the top probability when sampling; 0 = off")
    repetition_penalty: float = _f(1.0, "> 1 discourages repeating recent tokens while sampling; 1 = off")
    truncated: str = _f("penalize", "an answer cut off at --max-completion (no end of turn): penalize (its "
                                    "reward minus --truncation-penalty), mask (not trained on), keep (scored "
                                    "as it is)", choices=TRUNCATED)
    truncation_penalty: float = _f(1.0, "what --truncated penalize subtracts from a cut-off answer's reward")
    generate_batch_size: int = _f(0, "answers decoded together (0: all answers of a batch at once)")
    micro_batch: int = _f(2, "answers per forward/backward pass of the update (and of the no-gradient log-prob "
                             "passes); their gradients are summed into exactly the update of all answers at once: "
                             "smaller uses less memory, larger may be a little faster")

    def mode_problems(self) -> list[str]:
        problems = super().mode_problems() + check_mode_fields(self, ROLLOUT_FIELDS)
        if problems:
            return problems
        if self.reward:
            from localtune.errors import LocaltuneError
            from localtune.rewards import parse_specs

            try:
                parse_specs(self.reward)
            except LocaltuneError as e:
                problems.append(str(e))
        if self.max_completion < 1:
            problems.append("max_completion must be >= 1")
        if self.temperature <= 0:
            problems.append("temperature must be > 0 (online RL samples its answers)")
        if not 0 < self.top_p <= 1:
            problems.append("top_p must be in (0, 1]")
        if self.top_k < 0:
            problems.append("top_k must be >= 0")
        if not 0 <= self.min_p <= 1:
            problems.append("min_p must be in [0, 1]")
        if self.repetition_penalty <= 0:
            problems.append("repetition_penalty must be > 0")
        if self.truncation_penalty < 0:
            problems.append("truncation_penalty must be >= 0")
        if self.generate_batch_size < 0:
            problems.append("generate_batch_size must be >= 0")
        if self.micro_batch < 1:
            problems.append("micro_batch must be >= 1 (answers per forward/backward pass; a number at least "
                            "--batch-size x the answers per prompt does all of them at once)")
        for name, why in (("pack", "answers are generated, not packed"), ("train_on_prompt", "the loss is on answers"),
                          ("format", "prompt files are read by their keys"), ("columns", "prompt rows are read by "
                                                                                          "their keys"),
                          ("unlikelihood", "an SFT loss term; the reward decides here")):
            if getattr(self, name):
                problems.append(f"{name} does not apply to training on the model's answers ({why})")
        if self.answer_start_weight != 1.0:
            problems.append("answer_start_weight does not apply to training on the model's answers (an SFT "
                            "loss weight; the reward decides here)")
        if self.valid:
            problems.append("valid does not apply to training on the model's answers: measure with "
                            "`localtune eval --adapter RUN` (or eval during training)")
        return problems

    def with_absolute_paths(self):
        from localtune.rewards import with_absolute_path

        cfg = super().with_absolute_paths()
        return cfg.replace(reward=tuple(with_absolute_path(r) for r in cfg.reward))

    def sampling(self, seed: int):
        """The Sampling of one batch's answers (its own seed: see train/rollouts.py)."""
        from localtune.generate import Sampling

        return Sampling(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p,
                        repetition_penalty=self.repetition_penalty, max_tokens=self.max_completion, seed=seed)


ROLLOUT_FIELDS = {"reward", "max_completion", "temperature", "top_p", "top_k", "min_p", "repetition_penalty",
                  "truncated", "truncation_penalty", "generate_batch_size", "micro_batch"}
