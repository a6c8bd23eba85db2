"""`localtune train reward`: every flag of `train dpo` that applies to pairs, plus --margin and
--center-rewards."""

from __future__ import annotations


def register(kinds, common) -> None:
    from localtune.cli.train_cmd import add_config_flags
    from localtune.config_reward import RewardConfig

    p = kinds.add_parser(
        "reward", help="a reward model: LoRA + a scalar head, Bradley-Terry on preference pairs",
        description="Train a reward model on prompt/chosen/rejected pairs (the files `train dpo` reads; an "
                    "optional 'margin' column). The run holds the adapter and reward_head.safetensors; "
                    "score with `localtune reward score RUN --data FILE` or `localtune eval --reward-model RUN`.",
    )
    common(p)
    add_config_flags(p, RewardConfig)
    p.set_defaults(func=run_reward)


def run_reward(args) -> int:
    from localtune.cli.train_cmd import execute
    from localtune.config_reward import RewardConfig
    from localtune.train.reward import reward_task

    return execute(args, RewardConfig, reward_task,
                   hint="score with it: localtune reward score {run} --data FILE (or localtune eval --reward-model {run})")
