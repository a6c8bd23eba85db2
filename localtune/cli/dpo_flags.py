"""`localtune train dpo`: every SFT flag plus --beta, --loss, --label-smoothing, --ref, ...; with
--online, the rollout flags (--prompts, --reward, --max-completion, sampling) of online DPO."""

from __future__ import annotations


def register(kinds, common) -> None:
    from localtune.cli.grpo_flags import add_prompts_flag
    from localtune.cli.train_cmd import add_config_flags
    from localtune.config_dpo import OnlineDPOConfig

    dpo = kinds.add_parser(
        "dpo", help="preference tuning: DPO (sigmoid, IPO, hinge), ORPO, SimPO; online DPO with --online",
        description="Preference tuning on prompt/chosen/rejected pairs. Start from an SFT run with "
                    "--adapter RUN_DIR (the usual path) or from the base model. With --online the pairs are "
                    "the model's own answers to --prompts, labelled by --reward.",
    )
    common(dpo)
    add_config_flags(dpo, OnlineDPOConfig)
    add_prompts_flag(dpo)
    dpo.set_defaults(func=run_dpo)


def _online(args) -> bool:
    """--online, `online: true` in --config, or a run being resumed that was started with it."""
    if args.online is not None:
        return args.online
    if args.config:
        from dataclasses import fields

        from localtune.config import FIELDS, read_yaml
        from localtune.config_dpo import OnlineDPOConfig

        # every option an online DPO config may hold (reward, temperature, ...), not only `online`
        extra = tuple(f.name for f in fields(OnlineDPOConfig) if f.name not in FIELDS)
        return bool(read_yaml(args.config, extra_keys=extra).get("online"))
    if args.resume:
        from localtune.runs import read_run

        return bool(read_run(args.resume).config.get("online"))
    return False


def run_dpo(args) -> int:
    from localtune.cli.train_cmd import execute
    from localtune.config_dpo import DPOConfig, OnlineDPOConfig
    from localtune.config_rollout import ROLLOUT_FIELDS
    from localtune.errors import LocaltuneError

    if _online(args):
        from localtune.cli.grpo_flags import check_rewards
        from localtune.train.online_dpo import online_dpo_task

        check_rewards(args)
        return execute(args, OnlineDPOConfig, online_dpo_task, data_flag="--prompts")
    given = sorted(f"--{k.replace('_', '-')}" for k in ROLLOUT_FIELDS if getattr(args, k, None) is not None)
    if given:
        raise LocaltuneError(f"{', '.join(given)}: online DPO options; add --online (or leave them out)")
    from localtune.train.dpo import dpo_task

    return execute(args, DPOConfig, dpo_task)
