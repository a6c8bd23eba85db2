"""Model rewards: a reward model trained with localtune, or an AI judge's win rate in the group.

- `reward-model:RUN`: the reward run's scalar score of each answer to its prompt row's conversation
  (reward/model.py). Inside the policy when it is the run's base (the run's adapter and value head
  swapped in for the call, the policy's put back), else in its own copy of the run's base.
- `judge:MODEL[:CONSTITUTION.yaml]`: each answer's win rate against the other answers to the same
  prompt in the step (feedback/judge.py: every pair judged in both orders; a win 1, a tie or an
  order-dependent verdict 0.5, over n - 1), under the constitution given, else localtune's.
  MODEL `policy`, or the policy's own model directory, judges with the policy's weights and its
  adapter off (the base judges; no second copy); another model is loaded once, for the run.

Both are deterministic given their weights, so exact resume holds. `files` is what the run's record
keeps to check on resume ({path: hash}): the reward run's adapter and head files, the judge's own
model's weight fingerprint.
"""

from __future__ import annotations

from pathlib import Path

from localtune import events
from localtune.errors import LocaltuneError
from localtune.rewards.source import RewardError

POLICY = "policy"  # judge:policy: the policy's own base weights judge


class RewardModelReward:
    def __init__(self, run: str, weight=1.0, name="reward_model", spec="", *, model=None, tokenizer=None,
                 on_event=events.ignore):
        from localtune.lora import ADAPTER_FILE
        from localtune.reward.model import RewardModel
        from localtune.rewards.python_fn import file_hash
        from localtune.runs import layout

        self.weight, self.name, self.spec = weight, name, spec or f"reward-model:{run}"
        try:
            self.model = RewardModel.open(Path(run).expanduser(), model=model, tokenizer=tokenizer, on_event=on_event)
        except LocaltuneError as e:  # the run's own message, under the --reward that named it
            raise RewardError(f"--reward {self.spec}: {e}") from None
        self.files = {str(self.model.source / f): file_hash(self.model.source / f)
                      for f in (ADAPTER_FILE, layout.REWARD_HEAD_FILE)}

    def score(self, rows, prompts, completions) -> list[float | None]:
        return self.model.score([r.messages for r in rows], list(completions))


class JudgeReward:
    def __init__(self, judge, weight=1.0, name="judge", spec="judge", files=None):
        self.judge, self.weight, self.name, self.spec = judge, weight, name, spec
        self.files = files or {}

    @classmethod
    def open(cls, model_arg: str, constitution: str | None, weight=1.0, name="judge", spec="", *, model=None,
             tokenizer=None, model_path=None, on_event=events.ignore) -> "JudgeReward":
        from localtune.feedback.constitution import load_constitution
        from localtune.feedback.judge import Judge, load_judge

        spec = spec or f"judge:{model_arg}"
        if model_arg == POLICY and model is None:
            raise RewardError(f"--reward {spec}: the policy judges only in a run that has one (grpo, dpo --online)")
        try:
            if model is not None and _is_policy(model_arg, model_path, on_event):
                return cls(Judge.on_policy(model, tokenizer, load_constitution(constitution), name=POLICY),
                           weight, name, spec)
            judge = load_judge(model_arg, constitution=constitution, on_event=on_event)
        except LocaltuneError as e:
            raise RewardError(f"--reward {spec}: {e}") from None
        from localtune.train.provenance import base_fingerprint

        on_event(events.Notice(f"reward {spec}: loaded the judge {judge.name} once for the run (not the "
                               "policy's base, so it cannot share the policy's weights)").to_dict())
        return cls(judge, weight, name, spec, files={judge.name: base_fingerprint(judge.model)})

    def score(self, rows, prompts, completions) -> list[float | None]:
        groups: dict[int, list[int]] = {}  # the answers to each prompt row of the step, in order
        for k, row in enumerate(rows):
            groups.setdefault(id(row), []).append(k)
        rates = self.judge.win_rates_many([(rows[ks[0]].messages, [completions[k] for k in ks])
                                           for ks in groups.values()])
        out: list[float | None] = [None] * len(completions)
        for ks, values in zip(groups.values(), rates):
            for k, v in zip(ks, values):
                out[k] = v if len(ks) > 1 else None  # alone, an answer has nothing to win against
        return out


def _is_policy(model_arg: str, model_path, on_event) -> bool:
    """`policy`, or the very model directory the policy was loaded from."""
    if model_arg == POLICY:
        return True
    if model_path is None:
        return False
    from localtune.models import resolve_model

    return Path(resolve_model(model_arg, on_event=on_event)).resolve() == Path(model_path).resolve()
